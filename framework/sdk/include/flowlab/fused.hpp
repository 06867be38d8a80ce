// A linear layer and its activation as one op: y = act(x W^T + b). After the matrix product, the bias, the
// activation and (in backward) the activation's derivative and the bias gradient are each one pass over the
// [B, out] block instead of two or three ATen ops with their own temporaries. On CPU float32 each op here is
// differentiable once: its backward is not itself recorded (no second derivatives through create_graph, no
// forward-mode AD; a backward run with create_graph throws flowlab::Error); nothing in flowlab takes them. Inside
// flowlab::jvp (objective.hpp) every op here steps aside to ATen's ops, which have forward derivatives.
#pragma once

#include <string>
#include <vector>

#include "flowlab/export.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

enum class Activation { silu, relu, gelu, selu };

/// "silu", "relu", "gelu" or "selu"; throws flowlab::Error for any other name.
FLOWLAB_API Activation activation_from_name(const std::string& name);

/// act(x) with ATen's own ops (at::silu, at::relu, at::gelu, at::selu): the reference for linear_activation.
FLOWLAB_API Tensor activate(const Tensor& x, Activation act);

/// act(x W^T + b) for x [B, in], weight [out, in] (any strides, e.g. a column block of a wider layer) and bias
/// [out] or [1, out], the same for every row. Differentiable in x, weight and bias.
/// On CPU float32 with silu, relu or selu: the product is at::mm, and the rest is flowlab's own loop (exp to within
/// 2 ulp of expf, AVX-512/AVX2 by the CPU it runs on); otherwise at::addmm and activate().
FLOWLAB_API Tensor linear_activation(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act);

/// The layers of an MLP after its input, as one op: h_0 = x [B, in], h_i = act(h_{i-1} W_i^T + b_i) for the hidden
/// layers, and the result h_n W_out^T + b_out, with no activation. params = {W_1, b_1, ..., W_n, b_n, W_out, b_out}
/// (weights [out, in], biases [out]; n >= 0). Differentiable in x and every parameter. On CPU float32 with silu,
/// relu or selu, contiguous parameters: one autograd node whose forward and backward call the BLAS's sgemm
/// directly, with the arguments at::mm and at::addmm give it (so the forward has their bits), on buffers allocated
/// once per call, and sum the bias gradients in double. Otherwise linear_activation layer by layer and at::addmm.
FLOWLAB_API Tensor mlp_layers(const Tensor& x, const std::vector<Tensor>& params, Activation act);

/// silu(x) = x sigmoid(x) for a tensor of any shape. On CPU float32 one pass forward (keeping sigmoid(x)) and one
/// multiply-add per element backward; elsewhere at::silu.
FLOWLAB_API Tensor silu(const Tensor& x);

/// FiLM then SiLU: silu(h (1 + scale) + shift) for h [B, C, ...] and scale, shift with B C elements ([B, C] or
/// [B, C, 1, 1]), one value per (batch, channel) plane. On CPU float32 one pass forward and one backward (which also
/// sums the scale and shift gradients over each plane); elsewhere the same expression in ATen ops.
FLOWLAB_API Tensor film_silu(const Tensor& h, const Tensor& scale, const Tensor& shift);

/// [cos(t f_k) for k < K, sin(t f_k) for k < K (, 2t - 1 when odd_column)] for t [B]: the features of
/// sinusoidal_embedding in one pass, for float32 t on CPU that needs no gradient (Cephes' sinf/cosf, about 1e-7
/// absolute error, for |t f| <= 8192). Returns an undefined tensor where it does not apply; the caller then uses ATen.
FLOWLAB_API Tensor sin_cos_features(const Tensor& t, const std::vector<float>& frequencies, bool odd_column);

}  // namespace flowlab
