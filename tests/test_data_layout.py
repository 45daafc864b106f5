"""The VoxCeleb1 scanner reads a tree laid out exactly like VoxCeleb1, and the real protocol lists resolve on it.

The tree is built here, independently of `voicestyle.data`: a tiny wav (0.2 s) and a tiny jpg (8x8) at every
distinct voice and face path of `matching_v2f_U.csv` and `veriflist_test_random_unseenunheard.txt`
(the verification list's `<name>/<video>_<7 digits>.wav` voice paths are mapped to `wav/<id>/<video>/<5 digits>.wav`
with the names -> ids of `vox1_meta.csv`; its `<name>/<video>/<frame>.jpg` face paths live under
`unzippedFaces/<name>/1.6/`).
"""
import csv, io, os, shutil, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from voicestyle.data import (Manifest, ProtocolError, protocol_path, read_matching_list, read_verification_list,
                             resolve_protocol, scan_voxceleb1)

PROTO = Path(__file__).resolve().parents[1] / 'voicestyle' / 'assets' / 'protocols' / 'voxceleb1'


def _raw_lists():
    "The two lists and the meta file read with the csv module only (no voicestyle code)."
    with open(PROTO / 'matching_v2f_U.csv') as f: matching = [l.split() for l in f if l.strip()]
    with open(PROTO / 'veriflist_test_random_unseenunheard.txt') as f: verif = list(csv.DictReader(f))
    with open(PROTO / 'vox1_meta.csv') as f: meta = list(csv.DictReader(f, delimiter='\t'))
    name2id = {r['VGGFace1 ID'].strip(): r['VoxCeleb1 ID'].strip() for r in meta}
    return matching, verif, name2id


def _verif_voice(p, name2id):
    "<name>/<video>_<7 digits>.wav -> wav/<id>/<video>/<5 digits>.wav"
    name, rest = p.split('/')
    video, num = rest[:-len('.wav')].rsplit('_', 1)
    assert len(num) == 7 and num.isdigit(), p
    return f'wav/{name2id[name]}/{video}/{int(num):05d}.wav'


def _verif_face(p):
    "<name>/<video>/<frame>.jpg -> unzippedFaces/<name>/1.6/<video>/<frame>.jpg"
    name, video, frame = p.split('/')
    return f'unzippedFaces/{name}/1.6/{video}/{frame}'


@pytest.fixture(scope='module')
def vox1(tmp_path_factory):
    t0 = time.perf_counter()
    root = tmp_path_factory.mktemp('voxceleb1')
    matching, verif, name2id = _raw_lists()
    wavs = {f'wav/{p}' for p, _, _ in matching} | {_verif_voice(r['voice-path'], name2id) for r in verif}
    jpgs = ({f'unzippedFaces/{q}' for _, pos, neg in matching for q in (pos, neg)}
            | {_verif_face(r['face-path']) for r in verif})
    b = io.BytesIO()
    t = np.arange(3200) / 16000
    sf.write(b, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, format='WAV', subtype='PCM_16')
    wav = b.getvalue()
    b = io.BytesIO(); Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(b, 'JPEG')
    jpg = b.getvalue()
    # every path gets its own directory entry; the bytes are shared through hard links (6x faster to create)
    (root / 'tiny.wav').write_bytes(wav); (root / 'tiny.jpg').write_bytes(jpg)
    made = set()
    for rel, src in [(p, root / 'tiny.wav') for p in sorted(wavs)] + [(p, root / 'tiny.jpg') for p in sorted(jpgs)]:
        d = rel.rsplit('/', 1)[0]
        if d not in made: (root / d).mkdir(parents=True, exist_ok=True); made.add(d)
        os.link(src, root / rel)
    shutil.copy(PROTO / 'vox1_meta.csv', root); shutil.copy(PROTO / 'identity_splits.txt', root)
    print(f'\nwrote {len(wavs)} wavs and {len(jpgs)} jpgs in {time.perf_counter() - t0:.1f} s')
    t0 = time.perf_counter()
    m = scan_voxceleb1(root)
    print(f'scanned in {time.perf_counter() - t0:.1f} s: {m}')
    yield root, m, wavs, jpgs, matching, verif, name2id
    shutil.rmtree(root, ignore_errors=True)     # 76k files: do not leave them to pytest's tmp retention


def test_scan_reads_voxceleb1_tree(vox1):
    root, m, wavs, jpgs, *_ = vox1
    c = m.clips
    assert set(c.audio[c.audio != '']) == wavs                    # every wav, nothing else
    assert set(m.frames().face) == jpgs                           # every frame, nothing else
    assert m.report.skipped == 0, m.report
    assert set(m.report.counts) <= {'video_without_faces', 'video_without_audio'}
    # identities, names and splits come from vox1_meta.csv / identity_splits.txt
    row = c[c.audio == 'wav/id10002/w9H-ZMvdE9M/00001.wav'].iloc[0]
    assert (row['name'], row.gender, row.nationality, row.split) == ('A.R._Rahman', 'm', 'India', 4)
    assert (c.split == 4).all()                                   # both lists are over the unseen-unheard identities
    # face frames are grouped per (identity, video) and shared by that video's utterances
    v = m.videos()
    assert v.faces.str.len().sum() == len(jpgs)
    assert not v[['identity', 'video']].duplicated().any()


def test_matching_v2f_U_resolves(vox1):
    root, m, wavs, jpgs, matching, *_ = vox1
    r = resolve_protocol(protocol_path('matching_v2f_U.csv'), m, strict=True)
    assert r.ok and r.table.resolved.all() and len(r.table) == 10000 == len(matching)
    assert (r.table.probe_path == ['wav/' + p for p, _, _ in matching]).all()
    assert (r.table.positive_path == ['unzippedFaces/' + q for _, q, _ in matching]).all()
    assert (r.table.negative_path == ['unzippedFaces/' + q for _, _, q in matching]).all()
    assert (r.table.probe_identity == r.table.positive_identity).all()
    assert (r.table.probe_identity != r.table.negative_identity).all()
    # indices point at the same files
    assert (m.clips.audio.to_numpy()[r.table.probe_index] == r.table.probe_path).all()
    assert (m.frames().face.to_numpy()[r.table.negative_index] == r.table.negative_path).all()


def test_verification_list_resolves(vox1):
    root, m, wavs, jpgs, _, verif, name2id = vox1
    r = resolve_protocol(protocol_path('veriflist_test_random_unseenunheard.txt'), m, strict=True)
    assert r.ok and len(r.table) == len(verif) == 30496
    assert (r.table.voice_path == [_verif_voice(o['voice-path'], name2id) for o in verif]).all()
    assert (r.table.face_path == [_verif_face(o['face-path']) for o in verif]).all()
    # the label says whether the voice and the face are the same person
    assert ((r.table.voice_identity == r.table.face_identity).astype(int) == r.table.label).all()


def test_unknown_identity_and_missing_file_reported(vox1):
    root, m, *_ = vox1
    v = read_verification_list(protocol_path('veriflist_test_random_unseenunheard.txt')).head(5)
    extra = pd.DataFrame([dict(id='99', voice_speaker='0', face_speaker='0', label=1,
                               voice='Not_A_Celebrity/abcdefghijk_0000001.wav', face='A.R._Rahman/QanuGhOhb9A/0035550.jpg'),
                          dict(id='100', voice_speaker='2', face_speaker='2', label=1,
                               voice='A.R._Rahman/gaQqIoV_aLY_0000999.wav', face='A.R._Rahman/QanuGhOhb9A/0035550.jpg')])
    r = resolve_protocol(pd.concat([v, extra], ignore_index=True), m)
    assert r.table.resolved.tolist() == [True] * 5 + [False, False]
    assert r.unresolved[['row', 'column', 'reason']].values.tolist() == [[5, 'voice', 'unknown_identity'],
                                                                         [6, 'voice', 'missing_file']]
    with pytest.raises(ProtocolError, match='2 paths do not resolve'):
        resolve_protocol(pd.concat([v, extra], ignore_index=True), m, strict=True)
    mm = read_matching_list(protocol_path('matching_v2f_U.csv')).head(3)
    mm.loc[1, 'negative'] = 'Nobody_Known/1.6/abcdefghijk/0000025.jpg'
    r = resolve_protocol(mm, m)
    assert r.counts == {'unknown_identity': 1} and r.unresolved.row.tolist() == [1]


def test_manifest_roundtrip(vox1, tmp_path):
    root, m, *_ = vox1
    p = m.save(tmp_path / 'vox1.csv')
    m2 = Manifest.load(p)
    assert m2.root == Path(root).resolve()
    pd.testing.assert_frame_equal(m2.clips, m.clips)
    r = resolve_protocol(protocol_path('matching_v2f_U.csv'), m2)
    assert r.ok
