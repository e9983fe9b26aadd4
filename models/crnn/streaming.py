"""Streaming CRNN: each hop encodes only the audio that is new, then runs the GRUs over the window.

A hop of ``hop_samples`` new audio gives ``hop_samples / mel_hop`` new mel frames (the front end
runs with ``center=False`` on the new audio plus the ``n_fft - mel_hop`` samples before it) and
``hop_samples / (mel_hop * time_stride)`` new encoder frames. Every convolutional block keeps the
last two rows of its input (its causal receptive field in time) as state, so the new encoder
frames equal those of one causal pass over the whole stream from its start: the encoder has no
right context and adds no delay. The recurrent part (two bidirectional GRU layers) then runs over
the window's encoder frames (the history the caller keeps plus the new ones), as the offline
network does on a clip of that length.

:class:`StreamingStep` is the exported graph, one hop:

* inputs: ``audio`` (B, hop_samples + n_fft - mel_hop) float32; ``state`` (B, S) the caches of
  all blocks, each ``(C_in_i, 2, F_i)``, flattened and concatenated (one tensor whatever the
  depth); ``history`` (B, 1 + H, D): a placeholder frame the graph drops (so the input is never
  empty: runners refuse empty axes, and right after a reset there is no history), then the
  window's earlier encoder frames (H from 0 up to the window's frames minus the new ones);
* outputs: ``probs`` (B, H + N, C) frame probabilities over the window, ``frames`` (B, N, D) the
  new encoder frames, and ``next_state`` (B, S).

The caller (``models.crnn.live.StreamingLabeler``) owns the state between hops and resets it to
zeros (the causal padding of a stream's start) whenever the stream does not continue.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.audio.frontend import FrontEnd, FrontEndConfig
from models.crnn.network import CRNN


class StreamingStep(nn.Module):
    """One hop of the streaming CRNN (see the module docstring for inputs and outputs).

    Args:
        model: a trained causal :class:`CRNN` without fused embeddings.
        frontend: its front end with ``center=False``.
        hop_samples: new samples per hop, a multiple of ``mel_hop * time_stride``.
    """

    def __init__(self, model: CRNN, frontend: FrontEndConfig, hop_samples: int):
        super().__init__()
        c = model.config
        if not c.causal:
            raise ValueError("streaming needs a causal CRNN (causal=True): an offline one looks at later frames")
        if c.fusion_dims:
            raise ValueError("streaming runs the spectral CRNN only; fused embeddings are an offline variant")
        if frontend.center:
            raise ValueError("streaming needs the front end with center=False")
        step = frontend.hop_length * c.time_stride
        if hop_samples <= 0 or hop_samples % step:
            raise ValueError(f"hop: expected a positive multiple of {step} samples (mel hop {frontend.hop_length} x "
                             f"encoder stride {c.time_stride}), found {hop_samples}")
        self.model = model.eval()
        self.frontend = FrontEnd(frontend)
        self.hop_samples = hop_samples
        self.chunk_samples = hop_samples + frontend.n_fft - frontend.hop_length
        self.new_mel_frames = hop_samples // frontend.hop_length
        self.new_frames = self.new_mel_frames // c.time_stride

    def cache_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shape of each block's cache: (B, C_in, 2, F_in)."""
        c = self.model.config
        shapes, bins = [], c.input_bins
        for c_in, fp in zip((1, *c.channels[:-1]), c.freq_pools):
            shapes.append((batch, c_in, 2, bins))
            bins //= fp
        return shapes

    @property
    def state_size(self) -> int:
        """S: values in the flattened state of one stream."""
        return sum(c * t * f for _, c, t, f in self.cache_shapes())

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """Zeros ``(batch, S)``: the state at a stream's start (the causal padding)."""
        return torch.zeros(batch, self.state_size)

    def unpack(self, state: torch.Tensor) -> list[torch.Tensor]:
        """``(B, S)`` -> each block's cache ``(B, C_in, 2, F_in)``."""
        caches, at = [], 0
        for _, c, t, f in self.cache_shapes():
            caches.append(state[:, at:at + c * t * f].reshape(-1, c, t, f))
            at += c * t * f
        return caches

    def encode_new(self, audio: torch.Tensor, caches: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``audio`` (B, chunk_samples) -> (new encoder frames (B, N, D), next caches)."""
        net = self.model
        x = net.input_image(self.frontend(audio))  # (B, 1, new_mel_frames, bins)
        next_caches = []
        for block, cache in zip(net.blocks, caches):
            joined = torch.cat([cache, x], dim=2)  # (B, C, 2 + n, F): the causal padding, from the past
            next_caches.append(joined[:, :, -2:])
            x = block(joined)
        b, ch, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, ch * f), next_caches

    def forward(self, audio: torch.Tensor, state: torch.Tensor, history: torch.Tensor):
        """One hop: ``audio`` (B, chunk_samples), ``state`` (B, S), ``history`` (B, 1 + H, D),
        its first frame ignored -> (probs (B, H + N, C), frames (B, N, D), next_state (B, S))."""
        frames, next_caches = self.encode_new(audio, self.unpack(state))
        probs, _ = self.model.decode(torch.cat([history[:, 1:], frames], dim=1))
        next_state = torch.cat([c.reshape(c.shape[0], -1) for c in next_caches], dim=1)
        return probs, frames, next_state


def full_stream_frames(model: CRNN, frontend: FrontEndConfig, stream: torch.Tensor) -> torch.Tensor:
    """Encoder frames of one causal pass over a whole stream ``(B, N)`` -> ``(B, T', D)``:
    what the streaming encoder must reproduce hop by hop (``center=False`` front end; the mel
    frames are cut to a multiple of the encoder stride)."""
    mel = FrontEnd(frontend)(stream)
    t = mel.shape[1] - mel.shape[1] % model.config.time_stride
    return model.encode(model.input_image(mel[:, :t]))


def pad_stream_start(stream: torch.Tensor, frontend: FrontEndConfig) -> torch.Tensor:
    """The stream with ``n_fft - mel_hop`` zeros before it: the chunk before the first hop."""
    return F.pad(stream, (frontend.n_fft - frontend.hop_length, 0))
