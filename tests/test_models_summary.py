"""Paper-size parameter counts, from configs alone (HuBERT-base architecture, random init, no weights)."""
from transformers import Wav2Vec2Config, Wav2Vec2Model

from models.summary import count, format_table, main, parameter_table


def test_paper_configuration_counts():
    rows = dict(parameter_table())
    by_prefix = {name.split(':')[0].split(' (')[0]: value for name, value in rows.items()}
    assert round(by_prefix['teacher'] / 1e6, 2) == 94.37
    assert round(by_prefix['student'] / 1e6, 2) == 23.49
    parts = ['  student CNN feature encoder', '  student feature projection', '  student positional convolution']
    layers_and_norms = by_prefix['student'] - sum(rows[p] for p in parts)
    assert layers_and_norms == 2 * rows['  student transformer layer (each)'] + 2 * 768 + 768  # encoder LN, mask embed
    assert by_prefix['OS-KDFT adapters'] == 2 * (768 * 64 + 64 + 64 * 768 + 768)
    assert by_prefix['KD prediction heads'] == 3 * 2 * (768 * 768 + 768)
    per_layer_tuner = (768 * 64 + 64 + 64 * 768 + 768) + (768 * 96 + 96) + 2 * 96 + (96 * 768 + 768)
    assert by_prefix['attentive feature tuner'] == 2 * per_layer_tuner
    assert by_prefix['back-end, tuner'] == 2 * per_layer_tuner + 1536 * 192 + 192 + 2 * 192
    assert by_prefix['back-end, weighted sum'] == 3 + 1536 * 192 + 192 + 2 * 192
    assert by_prefix['speaker classifier, softmax'] == 192 * 1211 + 1211
    text = format_table(list(rows.items()))
    assert '94.37' in text and '23.49' in text


def test_summary_command_prints_the_table(capsys):
    main()  # what `python -m models.summary` runs
    printed = capsys.readouterr().out
    assert 'teacher: hubert, 12 layers, hidden 768' in printed and '23.49' in printed


def test_student_count_equals_a_two_layer_model_of_the_family():
    rows = parameter_table(Wav2Vec2Config(), target_layer_idx=(4, 8, 12))
    student = next(value for name, value in rows if name.startswith('student:'))
    assert student == count(Wav2Vec2Model(Wav2Vec2Config(num_hidden_layers=2)))
    assert rows[0][0] == 'teacher: wav2vec2, 12 layers, hidden 768'
