"""Metric files hold what a metric means: EER (%) and minDCF with 4 decimals, other metrics 6 significant digits."""
import os

from log import LogModuleController
from log.base import rounded


def test_rounding_by_what_the_metric_means():
    assert rounded('eer/val', 34.599999999999994) == 34.6
    assert rounded('teacher_ft/eer/final_O/full_tta', 12.345678) == 12.3457
    assert rounded('min_dcf_0.01/val', 0.987654321) == 0.9877
    assert rounded('loss/kd', 2.718281828459045) == 2.71828
    assert rounded('lr', 1.2345678e-05) == 1.23457e-05  # small values keep their digits
    assert rounded('bad_audio_files', 3.0) == 3.0


def test_the_metric_file_holds_the_rounded_value(tmp_path):
    logger = LogModuleController.Builder('run', 'proj').use_local(str(tmp_path)).build()
    assert 100 * 0.346 == 34.599999999999994
    logger.log_metric('eer/val', 100 * 0.346, step=1)
    logger.finish()
    with open(os.path.join(tmp_path, 'proj', 'run', 'eer', 'val.txt')) as f:
        assert f.read() == '[1] eer/val: 34.6\n'
