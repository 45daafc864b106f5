"""Loading a StyleGAN checkpoint must never run code the file carries.

NVIDIA's .pkl files are pickles whose networks embed their defining source (`module_src`), which NVIDIA's own
loader executes; any pickle can also name arbitrary globals (os.system, eval, ...). voicestyle.stylegan reads them
with an allow-listed unpickler and reads torch files with torch.load(weights_only=True). These tests build hostile
files and check that they are refused (or, for module_src, loaded without running it) and that the payload's side
effect -- a marker file -- never appears.
"""
import builtins, io, os, pickle, subprocess

import pytest
import torch

from voicestyle.stylegan import (CheckpointError, Generator, PersistentObject, SafeUnpickler, UnsafePickleError,
                                 generator_config, load_generator, load_nvidia_generator, nvidia_init_kwargs,
                                 nvidia_style_pickle, read_nvidia_pickle, save_generator)


class Payload:
    "Unpickling an instance calls fn(*args)."
    def __init__(self, fn, *args): self.fn, self.args = fn, args
    def __reduce__(self): return (self.fn, self.args)


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / 'PAYLOAD_RAN'
    yield m
    assert not m.exists(), 'a payload ran during the test'


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    G = Generator(generator_config('tiny')).eval()
    return G, G.state_dict(), nvidia_init_kwargs(G.cfg)


def test_payload_is_live(tmp_path):
    "The payload used below really runs under plain pickle.loads (so its absence later means something)."
    m = tmp_path / 'live'
    pickle.loads(pickle.dumps(Payload(os.system, f'touch {m}')))
    assert m.exists()


def test_os_system_pickle_refused(tmp_path, marker):
    p = tmp_path / 'evil.pkl'
    p.write_bytes(pickle.dumps({'G_ema': Payload(os.system, f'touch {marker}')}, protocol=3))
    with pytest.raises(UnsafePickleError, match=r"refusing global '(posix|nt|os)\.system'"):
        load_generator(p)
    with pytest.raises(pickle.UnpicklingError):       # UnsafePickleError is an UnpicklingError
        read_nvidia_pickle(p)


@pytest.mark.parametrize('fn,args', [
    (builtins.eval, ('1+1',)), (builtins.exec, ('x = 1',)), (getattr, ('abc', 'upper')), (builtins.__import__, ('os',)),
    (subprocess.Popen, (['true'],)), (subprocess.check_output, (['true'],)), (torch.load, ('model.pt',)),
    (open, ('/etc/hostname',)), (pickle.loads, (b'N.',)),
])
def test_non_allowlisted_globals_refused(fn, args):
    with pytest.raises(UnsafePickleError, match='refusing global'):
        SafeUnpickler(io.BytesIO(pickle.dumps(Payload(fn, *args)))).load()


def test_payload_nested_in_nvidia_structure_refused(tmp_path, marker, tiny):
    "A malicious object hidden among the extra entries of an otherwise valid NVIDIA pickle stops the whole load."
    _, sd, kw = tiny
    p = tmp_path / 'nested.pkl'
    p.write_bytes(nvidia_style_pickle(sd, kw, extra={'augment_pipe': Payload(os.system, f'touch {marker}')}))
    with pytest.raises(UnsafePickleError, match='system'):
        load_generator(p)


@pytest.mark.parametrize('src', [
    "open({m!r}, 'w').write('module_src ran')\n",
    "import os\nos.system('touch {m}')\nclass Generator: pass\n",
])
def test_module_src_is_never_executed(tmp_path, marker, tiny, src):
    G, sd, kw = tiny
    code = src.format(m=str(marker))
    p = tmp_path / 'evil_src.pkl'
    p.write_bytes(nvidia_style_pickle(sd, kw, module_src=code))
    G2 = load_nvidia_generator(p)                                     # weights load ...
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G2(z, noise_mode='const'), G(z, noise_mode='const'))
    assert read_nvidia_pickle(p)['G_ema'].module_src == code          # ... and the source stays inert text


def test_payload_inside_storage_bytes_refused(marker):
    "torch.storage._load_from_bytes is allowed, but its bytes go through torch.load(weights_only=True)."
    inner = pickle.dumps(Payload(os.system, f'touch {marker}'), protocol=2)
    blob = pickle.dumps(Payload(torch.storage._load_from_bytes, inner), protocol=3)
    with pytest.raises(UnsafePickleError, match='weights_only'):
        SafeUnpickler(io.BytesIO(blob)).load()


def test_allowed_rebuilders_reject_wrong_arguments():
    blob = pickle.dumps(Payload(torch._utils._rebuild_tensor_v2, 'not a storage', 0, (1,), (1,), False, None), protocol=3)
    with pytest.raises(UnsafePickleError, match='expects a storage'):
        SafeUnpickler(io.BytesIO(blob)).load()


def test_persistent_ids_refused():
    with pytest.raises(UnsafePickleError, match='persistent id'):
        SafeUnpickler(io.BytesIO(b'\x80\x03X\x03\x00\x00\x00abcQ.')).load()


def _raw_persistent(meta_items: bytes) -> bytes:
    "Raw protocol-2 opcodes: torch_utils.persistence._reconstruct_persistent_obj({...meta_items...})."
    return b'\x80\x02ctorch_utils.persistence\n_reconstruct_persistent_obj\n}(' + meta_items + b'u\x85R'


def _s(text: str) -> bytes:
    b = text.encode()
    return b'X' + len(b).to_bytes(4, 'little') + b


def test_raw_opcode_persistent_object():
    "Hand-written opcodes, no torch_utils anywhere: the meta is returned as data and module_src is not run."
    meta = (_s('type') + _s('class') + _s('version') + b'K\x06' + _s('class_name') + _s('Generator')
            + _s('module_src') + _s("raise SystemExit('executed')") + _s('state') + b'}(' + _s('_init_kwargs')
            + b'cdnnlib.util\nEasyDict\n)\x81(' + _s('z_dim') + b'K\x10u' + b'u')
    obj = SafeUnpickler(io.BytesIO(_raw_persistent(meta) + b'.')).load()
    assert isinstance(obj, PersistentObject)
    assert obj.class_name == 'Generator' and obj.init_kwargs == {'z_dim': 16} and obj.state_dict() == {}


def test_build_on_persistent_object_refused():
    "A BUILD opcode cannot write attributes onto the loader's objects."
    blob = _raw_persistent(_s('class_name') + _s('Generator')) + b'}' + _s('state_dict') + b'Nsb.'
    with pytest.raises(UnsafePickleError, match='BUILD'):
        SafeUnpickler(io.BytesIO(blob)).load()


def test_torch_files_with_payload_refused(tmp_path, marker):
    "rosinality .pt and kit checkpoints go through torch.load(weights_only=True)."
    for name, obj in [('ros.pt', {'g_ema': Payload(os.system, f'touch {marker}'), 'latent_avg': torch.zeros(4)}),
                      ('kit.pt', {'format': 'voicestyle.stylegan', 'config': Payload(os.system, f'touch {marker}')})]:
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match='weights_only'):
            load_generator(tmp_path / name)


def test_legacy_torch_file_with_payload_refused(tmp_path, marker):
    torch.save({'g_ema': Payload(os.system, f'touch {marker}')}, tmp_path / 'legacy.pt', _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match='weights_only'):
        load_generator(tmp_path / 'legacy.pt')


def test_stylegan3_pickle_refused(tmp_path, tiny):
    _, _, kw = tiny
    sd3 = {'mapping.w_avg': torch.zeros(16), 'synthesis.input.affine.weight': torch.zeros(4, 16),
           'synthesis.L0_36_512.weight': torch.zeros(4, 4, 3, 3)}
    (tmp_path / 'sg3.pkl').write_bytes(nvidia_style_pickle(sd3, kw))
    with pytest.raises(CheckpointError, match='StyleGAN3'):
        load_generator(tmp_path / 'sg3.pkl')


def test_clean_files_still_load(tmp_path, tiny):
    "The guards do not get in the way of honest files."
    G, sd, kw = tiny
    (tmp_path / 'ok.pkl').write_bytes(nvidia_style_pickle(sd, kw))
    save_generator(G, tmp_path / 'ok.pt')
    z = torch.randn(2, G.z_dim)
    for p in ('ok.pkl', 'ok.pt'):
        assert torch.allclose(load_generator(tmp_path / p)(z, noise_mode='const'), G(z, noise_mode='const'), atol=1e-6)
