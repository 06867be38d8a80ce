// Images in oneDNN's channel-blocked layout, for CPU networks whose convolutions run in oneDNN.
//
// at::conv2d on CPU calls oneDNN, whose kernels read and write channel-blocked images (nChw16c with AVX-512,
// nChw8c otherwise); around every call ATen reorders the NCHW input into that layout and the output back, and
// again for each backward product: in the default U-Net about a fifth of oneDNN's time is such reorders. A network
// that keeps its activations blocked between convolutions skips them. Here a blocked image is a plain contiguous
// float tensor [N, C / B, H, W, B] (channel c at block c / B, lane c % B), so ATen's elementwise ops, at::cat along
// dim 1 and index_select work on it unchanged; the ops below do the rest (convolution through oneDNN, GroupNorm
// with FiLM and SiLU in one pass). Each is differentiable once (their backward is not itself recorded: no second
// derivatives through create_graph, no forward-mode AD) and agrees with its ATen counterpart to float rounding
// (tests/test_blocked.cpp).
#pragma once

#include "flowlab/export.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// The channel block B of oneDNN's layout on this CPU (16 with AVX-512, 8 with AVX2), or 0 where the blocked ops
/// are not available: flowlab built without oneDNN (libdnnl-dev 2.x), or oneDNN has no JIT convolution here.
FLOWLAB_API int64_t channel_block();

/// Whether a network should use the blocked layout for CPU float32 images: channel_block() > 0 and no
/// PlainLayoutGuard is alive on this thread.
FLOWLAB_API bool blocked_layout_enabled();

/// While alive, blocked_layout_enabled() is false on this thread: networks take their ATen (NCHW) path. For tests
/// and benchmarks that compare the two.
class FLOWLAB_API PlainLayoutGuard {
 public:
  PlainLayoutGuard();
  ~PlainLayoutGuard();
  PlainLayoutGuard(const PlainLayoutGuard&) = delete;
  PlainLayoutGuard& operator=(const PlainLayoutGuard&) = delete;

 private:
  bool previous_;
};

/// [N, C, H, W] -> [N, C / block, H, W, block] (C a multiple of block). Differentiable (ATen ops).
FLOWLAB_API Tensor to_blocked(const Tensor& x, int64_t block);
/// [N, C / B, H, W, B] -> [N, C, H, W]. Differentiable (ATen ops).
FLOWLAB_API Tensor from_blocked(const Tensor& xb);

/// The 2-D convolution of at::conv2d(x, weight, bias, stride, padding) (square kernel, same stride and padding on
/// both axes, no dilation or groups), by oneDNN. x is blocked [N, C / B, H, W, B], or plain [N, C, H, W] (a
/// network's input, e.g. 1 channel); the result is blocked, or plain [N, O, H', W'] when plain_out (a network's
/// output). Needs channel_block() > 0, CPU float32, and B dividing C (blocked x) and O (blocked result).
FLOWLAB_API Tensor conv2d_blocked(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
                                  int64_t padding, bool plain_out = false);

/// silu(GroupNorm(x) (1 + scale) + shift) for blocked x: GroupNorm with `groups` groups, eps and the affine
/// gamma, beta [C], as at::group_norm; scale and shift [N, C] (FiLM), or both undefined (then silu(GroupNorm(x))).
/// One pass for the moments and one for the output; backward two passes. Statistics in double.
FLOWLAB_API Tensor group_norm_silu_blocked(const Tensor& xb, int64_t groups, const Tensor& gamma, const Tensor& beta,
                                           double eps, const Tensor& scale = {}, const Tensor& shift = {});

/// Nearest-neighbour resize of blocked x to h x w, as at::upsample_nearest2d (source index floor(i in / out)).
FLOWLAB_API Tensor upsample_nearest_blocked(const Tensor& xb, int64_t h, int64_t w);

}  // namespace flowlab
