"""LibriSpeech file list (the KD corpus): <root>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac plus transcripts."""
from __future__ import annotations

import os
import re
import warnings

from data.voxceleb import describe_counts, find_audio

OFFICIAL_COUNTS = (251, 28539)  # train-clean-100: (speakers, utterances)
LAYOUT = '<root>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac with <spk>-<chapter>.trans.txt per chapter'
_NAME = re.compile(r'^(\d+)-(\d+)-(\d+)\.(flac|wav)$', re.IGNORECASE)


def scan_librispeech(root: str) -> list[str]:
    """Sorted audio paths below a LibriSpeech root; warns about chapters without transcript and odd names."""
    paths = find_audio(root, LAYOUT)
    speakers, misnamed, chapters = set(), [], set()
    for path in paths:
        match = _NAME.match(os.path.basename(path))
        if match is None:
            misnamed.append(path)
            continue
        speakers.add(match.group(1))
        chapters.add((os.path.dirname(path), f"{match.group(1)}-{match.group(2)}"))
    if misnamed:
        warnings.warn(f"{len(misnamed)} audio file(s) below {root!r} are not named <spk>-<chapter>-<utt>.flac, "
                      f"e.g. {misnamed[0]}; expected the layout {LAYOUT}", stacklevel=2)
    for folder, chapter in sorted(chapters):
        transcript = os.path.join(folder, f"{chapter}.trans.txt")
        if not os.path.isfile(transcript):
            warnings.warn(f"LibriSpeech chapter {folder} has no transcript {chapter}.trans.txt; "
                          f"expected the layout {LAYOUT}", stacklevel=2)
    print(describe_counts('LibriSpeech train-clean-100', (len(speakers), len(paths)), OFFICIAL_COUNTS))
    return paths
