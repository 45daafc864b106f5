"""Run by tests/test_ddp.py under torchrun (or plainly): a few CMPC steps, then dump this rank's banks and clusters."""
import sys, warnings
from pathlib import Path
import torch
from voicestyle.data import scan_voxceleb1
from voicestyle.train import TrainConfig, train

data, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    m = scan_voxceleb1(data)
cfg = TrainConfig(model='tiny', batch_size=8, epochs=2, ks=(4, 8), instance_epochs=1, recluster_every=1, lr=1e-3,
                  bn_batch=int(sys.argv[3]))
dumps = {}
def keep(step, o, state):
    c = state.criterion
    dumps[step] = dict(voice_bank=c.voice_bank.memory.clone(), face_bank=c.face_bank.memory.clone(),
                       voice_im2cluster=[t.clone() for t in c.voice_clusters['im2cluster']] if c.clustered else None,
                       face_im2cluster=[t.clone() for t in c.face_clusters['im2cluster']] if c.clustered else None)
    torch.save(dumps, out.parent / f'{out.name}.rank{state.rank}.pt')
train(m, cfg, out, progress=False, callback=keep)
