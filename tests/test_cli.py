"""The `voicestyle` console script end to end on ToyVox tiny: make, scan, train, resume, evaluate, generate."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).with_name('voicestyle')

def vs(*args, ok=True, timeout=900):
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, 'OMP_NUM_THREADS': '2', 'VOICESTYLE_CACHE': os.environ.get('VOICESTYLE_CACHE', '')})
    if ok: assert r.returncode == 0, f'voicestyle {" ".join(map(str, args))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return r

@pytest.fixture(scope='module')
def toyvox(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli') / 'toyvox'
    vs('toyvox', root, '--preset', 'tiny')
    return root

def test_scan_writes_a_manifest(toyvox, tmp_path):
    r = vs('scan', toyvox, '--out', tmp_path / 'manifest.csv')
    assert (tmp_path / 'manifest.csv').exists()
    assert 'Manifest' in r.stdout

def test_train_resume_evaluate(toyvox, tmp_path):
    run = tmp_path / 'run'
    vs('train', toyvox, run, '--preset', 'tiny', '--epochs', '2')
    final = run / 'final.pt'
    assert final.exists()
    steps = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    # a second call finds the finished run and resumes it: nothing is redone
    vs('train', toyvox, run, '--preset', 'tiny', '--epochs', '2')
    assert [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()] == steps
    # a different configuration in the same folder is refused, not silently mixed
    r = vs('train', toyvox, run, '--preset', 'tiny', '--epochs', '3', ok=False)
    assert r.returncode == 2 and 'another TrainConfig' in r.stderr
    r = vs('evaluate', final, toyvox, '--split', '4', '--trials', '100', '--out', tmp_path / 'res.csv')
    assert 'matching' in r.stdout and (tmp_path / 'res.csv').exists()
    # given lists, in the official formats: the same figures as lists drawn in-process
    import warnings
    import pandas as pd
    from voicestyle.data import scan_voxceleb1
    from voicestyle.evaluation import make_protocols, tables_from_clips, write_protocols
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        lists = make_protocols(*tables_from_clips(scan_voxceleb1(toyvox).subset(splits=[4]).clips), 100, 100, seed=0)
    write_protocols(lists, tmp_path / 'lists')
    r = vs('evaluate', final, toyvox, '--lists', tmp_path / 'lists', '--out', tmp_path / 'res_lists.csv')
    assert 'lists resolved' in r.stdout
    key = ['task', 'direction', 'protocol', 'metric']
    a, b = (pd.read_csv(tmp_path / f).set_index(key).value.sort_index() for f in ('res.csv', 'res_lists.csv'))
    assert (a - b).abs().max() < 1e-6
    # embeddings to a file, scored outside: the same figures again
    from voicestyle.train import load_embeddings
    from voicestyle.evaluation import evaluate_association
    vs('embed', final, toyvox, '--split', '4', '--out', tmp_path / 'emb.npz')
    ve, fe = load_embeddings(tmp_path / 'emb.npz')
    assert ve.attrs['info']['splits'] == [4] and len(ve.attrs['identity']) == len(ve)
    c = evaluate_association(ve, fe, lists).set_index(key).value.sort_index()
    assert (a - c).abs().max() < 1e-5
    # the shipped VoxCeleb1 lists name people ToyVox does not have: a one-line error, not a crash
    r = vs('evaluate', final, toyvox, '--lists', 'voxceleb1', ok=False)
    assert r.returncode == 2 and 'rows resolves against' in r.stderr and 'Traceback' not in r.stderr

def test_wrong_checkpoint_is_a_clear_error(toyvox, tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint at all')
    r = vs('evaluate', bad, toyvox, ok=False)
    assert r.returncode == 2 and 'bad.pt' in r.stderr and 'error' in r.stderr and 'Traceback' not in r.stderr

def test_bad_input_is_one_line(toyvox, tmp_path):
    "A wav given as a checkpoint or generator, a split the data lacks, an option that cannot apply: exit 2, no traceback."
    from voicestyle.cli import ASSETS
    wav = sorted((toyvox / 'wav').rglob('*.wav'))[0]
    for args, says in [(('evaluate', wav, toyvox), 'cannot be read as a voicestyle checkpoint'),
                       (('generate', wav, '--generator', wav, '--bank', tmp_path / 'b.pt', '--bank-data', toyvox, '--out', tmp_path / 'f'),
                        'neither a torch checkpoint nor a readable pickle'),
                       (('evaluate', ASSETS / 'cmpc_toyvox.pt', toyvox, '--split', '3'), 'no clips in split 3 for evaluation'),
                       (('generate', wav, '--invert-steps', '5', '--out', tmp_path / 'g'), '--invert-steps applies when a latent bank is made'),
                       (('generate', wav, '--cmpc', ASSETS / 'cmpc_toyvox.pt', '--out', tmp_path / 'h'), 'no latent bank for these models')]:
        r = vs(*args, ok=False)
        assert r.returncode == 2 and says in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-2000:])

def test_experiment_with_reference(tmp_path):
    "experiment --reference on a 40-identity ancestry ToyVox: CMPC, the baseline and the supervised reference in one table."
    from voicestyle.toyvox import make_toyvox
    root = make_toyvox(tmp_path / 'tv', 'tiny', seed=0, n_identities=40, ancestry=True)
    out = tmp_path / 'exp'
    r = vs('experiment', root, out, '--preset', 'tiny', '--seeds', '0', '--trials', '100', '--reference',
           '--protocols', 'U', 'G', 'N', '--set', 'batch_size=16')
    import pandas as pd
    res = pd.read_csv(out / 'results.csv')
    assert set(res.method) == {'cmpc', 'instance', 'supervised'}
    assert (out / 'supervised_seed0' / 'reference.pt').exists()
    table = (out / 'results.txt').read_text()
    assert 'supervised' in table and 'match v2f N' in table and 'ceiling' in table
    assert 'supervised closes' in r.stdout
    r = vs('experiment', toyvox_without_truth(tmp_path), tmp_path / 'x', '--preset', 'tiny', '--reference', ok=False)
    assert r.returncode == 2 and 'needs ToyVox ground truth' in r.stderr

def toyvox_without_truth(tmp_path):
    "A copy of a tiny ToyVox without its truth table: real-data shaped."
    import shutil
    dst = tmp_path / 'notruth'
    shutil.copytree(tmp_path / 'tv', dst)
    (dst / 'toyvox_truth.csv').unlink()
    return dst

def test_generate_then_judge_real(toyvox, tmp_path):
    "generate lists its faces in faces.csv; judge-real scores them with dlib against the voices' owners' real frames."
    import pandas as pd
    from voicestyle.cli import ASSETS
    from voicestyle.data import scan_voxceleb1
    clips = scan_voxceleb1(toyvox).clips.drop_duplicates('identity').head(3)
    out = tmp_path / 'faces'
    import numpy as np, soundfile as sf
    sf.write(tmp_path / 'silent.wav', np.zeros(16000, np.float32), 16000)
    (tmp_path / 'voices.txt').write_text('\n'.join(str(toyvox / a) for a in clips.audio[1:]) + '\n')
    args = ['generate', toyvox / clips.audio.iloc[0], tmp_path / 'silent.wav', '--list', tmp_path / 'voices.txt',
            '--out', out, '--bank', ASSETS / 'latent_bank_toyvox.pt', '--steps', '2', '--batch-size', '2']
    r = vs(*args)
    listing = pd.read_csv(out / 'faces.csv')
    assert len(listing) == 3 and all((out / i).exists() for i in listing.image)
    assert "skipped 1 voices {'silent': 1}" in r.stdout and pd.read_csv(out / 'skipped.csv').reason.tolist() == ['silent']
    r = vs(*args)                                                # the same job again: found done, nothing redone
    assert '2 of 2 batches were already done' in r.stdout
    r = vs(*args[:-1], '3', ok=False)                            # another job in the same folder is refused
    assert r.returncode == 2 and 'another generate job' in r.stderr
    r = vs('judge-real', out, toyvox, '--photos-per-identity', '2', '--voices')
    report = pd.read_csv(out / 'judge_real.csv')
    assert {'R@1', 'acc_1:2', 'dlib_same_person@0.6', 'voice_face_spearman'} <= set(report.metric)
    assert (report[report.metric == 'R@1'].n == 3).all()        # ToyVox cartoons: dlib boxes the whole image, none dropped
    # 32 px cartoons are below dlib's detector: every face is counted as boxed whole, none silently dropped
    assert 'R@1' in r.stdout and 'whole image used as the box' in r.stdout
    r = vs('judge-real', tmp_path, toyvox, ok=False)
    assert r.returncode == 2 and 'faces.csv: not found' in r.stderr and 'Traceback' not in r.stderr
    # the honest comparison: the same voices from the mean latent (--start mean), judged beside them
    mean = tmp_path / 'faces_mean'
    vs('generate', '--list', tmp_path / 'voices.txt', '--out', mean, '--bank', ASSETS / 'latent_bank_toyvox.pt',
       '--steps', '2', '--start', 'mean')
    r = vs('judge-real', out, toyvox, '--photos-per-identity', '2', '--baseline', mean, ok=False)
    assert r.returncode == 2 and 'lacks 1 of the voices' in r.stderr   # the list has 2 of the 3 voices
    vs('generate', toyvox / clips.audio.iloc[0], '--list', tmp_path / 'voices.txt', '--out', tmp_path / 'faces_mean3',
       '--bank', ASSETS / 'latent_bank_toyvox.pt', '--steps', '2', '--start', 'mean')
    vs('judge-real', out, toyvox, '--photos-per-identity', '2', '--baseline', tmp_path / 'faces_mean3')
    report = pd.read_csv(out / 'judge_real.csv')
    assert set(report.method) == {'generated', 'baseline'} and (report[report.metric == 'R@1'].n == 3).all()
