# GPU image for OS-KDFT2. The paper used nvcr.io/nvidia/pytorch:23.08-py3 (torch 2.1); the pinned stack
# (torch 2.14.1, transformers 5.24) needs a newer base, so this uses a recent NGC PyTorch image and installs
# the exact versions CI tests on top of it.
FROM nvcr.io/nvidia/pytorch:25.10-py3

WORKDIR /workspace/OS-KDFT2
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

# Mount the data sets and a Hugging Face cache (or a local teacher directory), e.g.
#   docker run --gpus all --ipc=host -v /data:/data -v ~/.cache/huggingface:/root/.cache/huggingface os-kdft2 \
#       python main.py path_train=/data/vox1/dev/wav path_test=/data/vox1/test/wav \
#       path_trials=/data/vox1/veri_test2.txt path_libri=/data/LibriSpeech/train-clean-100
CMD ["python", "main.py"]
