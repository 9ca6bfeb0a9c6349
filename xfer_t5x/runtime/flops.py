"""Analytic FLOPs of the mT5 encoder-decoder and of its encoder as a dual encoder: the one place
they are counted.

Matmul FLOPs only (2 per multiply-add), as MFU conventions count them:
  encoder:  every encoder weight x input tokens, plus attention scores (QK^T and AV);
  decoder:  self-attention, cross-attention query/output and MLP weights x target tokens, the
            cross-attention key/value projections x input tokens, both attention score terms;
  output:   the logits layer x target tokens.
A training step is 3 forward passes (forward + backward): 6 x weights x tokens. A gather
embedding costs nothing here. `6 x all params x (input + target tokens)` would overstate
mT5-xxl by about 2.2x (the embedding and the decoder never see input tokens).
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class FlopCount:
  encoder: float
  decoder: float
  output: float

  @property
  def forward(self) -> float:
    return self.encoder + self.decoder + self.output

  @property
  def train_step(self) -> float:
    return 3.0 * self.forward


def _encoder_layer_flops(config, batch_size: int, length: int) -> float:
  d, hd, ff = config.emb_dim, config.num_heads * config.head_dim, config.mlp_dim
  attn_proj = 4 * d * hd  # q, k, v, o
  mlp = 3 * d * ff  # wi_0, wi_1, wo
  return 2 * batch_size * length * (attn_proj + mlp) + 4 * batch_size * length * length * hd


def forward_flops(config, batch_size: int, inputs_length: int, targets_length: int) -> FlopCount:
  """FLOPs of one forward pass over `batch_size` sequences of the given (padded) lengths."""
  d, hd, ff = config.emb_dim, config.num_heads * config.head_dim, config.mlp_dim
  b, li, lt = batch_size, inputs_length, targets_length
  attn_proj = 4 * d * hd  # q, k, v, o
  mlp = 3 * d * ff  # wi_0, wi_1, wo
  enc_layer = _encoder_layer_flops(config, b, li)
  dec_layer = (2 * b * lt * (attn_proj + 2 * d * hd + mlp)  # self-attn, cross q/o, mlp
               + 2 * b * li * 2 * d * hd  # cross-attention keys and values of the inputs
               + 4 * b * lt * lt * hd + 4 * b * lt * li * hd)  # self and cross scores
  return FlopCount(encoder=float(config.num_encoder_layers * enc_layer),
                   decoder=float(config.num_decoder_layers * dec_layer),
                   output=float(2 * b * lt * d * config.vocab_size))


def train_step_flops(config, batch_size, inputs_length, targets_length) -> float:
  return forward_flops(config, batch_size, inputs_length, targets_length).train_step


def dual_encoder_train_step_flops(config, batch_size, queries_length, candidates_length,
                                  projection_dim=None) -> float:
  """A dual encoder's training step: the encoder over the queries and over the candidates, the
  projection of both, and the [batch x batch] similarity matrix; forward + backward = 3x."""
  b, n = batch_size, config.num_encoder_layers
  out_dim = projection_dim or config.emb_dim
  forward = (n * (_encoder_layer_flops(config, b, queries_length)
                  + _encoder_layer_flops(config, b, candidates_length))
             + (2 * 2 * b * config.emb_dim * projection_dim if projection_dim else 0)
             + 2 * b * b * out_dim)
  return 3.0 * float(forward)
