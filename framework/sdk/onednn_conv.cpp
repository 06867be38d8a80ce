// conv2d_blocked and channel_block (blocked.hpp): 2-D convolutions on channel-blocked images through oneDNN's C++
// API (Debian's libdnnl-dev, the same oneDNN 2.x that LibTorch's own at::conv2d calls). Built only where CMake found
// oneDNN 2.x (FLOWLAB_HAVE_DNNL); elsewhere channel_block() is 0 and networks keep their ATen path.
//
// Per shape, the forward, backward-data and backward-weights primitives are made once and cached. A call reorders
// only the weights (small) into the kernel's layout; images stay blocked, so nothing else is copied. The one
// exception is a plain image at a network's edge: a plain input is read as is (oneDNN's first-layer kernels take
// NCHW), and a plain output (e.g. 1 channel) is produced in the kernel's padded layout and reordered.
#include <torch/autograd.h>

#include <fmt/format.h>

#include <map>
#include <tuple>
#include <unordered_map>

#include "flowlab/detail/blocked.hpp"
#include "flowlab/errors.hpp"

#ifdef FLOWLAB_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace flowlab {

#ifdef FLOWLAB_HAVE_DNNL
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

memory::desc image_md(int64_t n, int64_t c, int64_t h, int64_t w, int64_t block) {
  const Tag tag = block == 16 ? Tag::nChw16c : block == 8 ? Tag::nChw8c : Tag::nchw;
  return memory::desc({n, c, h, w}, memory::data_type::f32, tag);
}

// A float buffer for a oneDNN memory of this descriptor (its size includes any padding).
Tensor buffer_for(const memory::desc& md) {
  return at::empty({static_cast<int64_t>((md.get_size() + sizeof(float) - 1) / sizeof(float))},
                   at::TensorOptions().dtype(at::kFloat));
}

void execute(const dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
  p.execute(cpu_stream(), args);
  cpu_stream().wait();
}

void reorder(const memory& from, const memory& to) {
  dnnl::reorder(from, to).execute(cpu_stream(), const_cast<memory&>(from), const_cast<memory&>(to));
  cpu_stream().wait();
}

// Where a kernel writes an output of descriptor `md` that the caller wants in `user`: `user` itself when the layouts
// agree, else a buffer in `holder`, to be reordered into `user` after (finish_output).
memory output_for(const memory& user, const memory::desc& md, Tensor& holder) {
  if (user.get_desc() == md) return user;
  holder = buffer_for(md);
  return memory(md, cpu_engine(), holder.data_ptr<float>());
}
void finish_output(const memory& written, const memory& user, const Tensor& holder) {
  if (holder.defined()) reorder(written, user);
}

// `from` as a memory of descriptor `md`: itself when the layouts agree, else reordered into `holder`.
memory as_layout(const memory& from, const memory::desc& md, Tensor& holder) {
  const memory to = output_for(from, md, holder);
  if (holder.defined()) reorder(from, to);
  return to;
}

// The primitives of one convolution shape.
struct ConvPrimitives {
  memory::desc src, dst;  // the caller's layouts of x and of the result
  memory::desc weights_plain;
  memory::desc bias;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
};

// n, c, h, w, o, k, stride, padding, block of x (0: plain), block of the result (0: plain).
using ConvKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

// One cache per thread: a oneDNN primitive (with its scratchpad) must not run on two threads at once. A reference
// is used only within the conv call that asked for it, so the cache may be emptied when it grows past kMaxShapes
// (each batch size is a shape of its own).
constexpr size_t kMaxShapes = 256;
const ConvPrimitives& primitives(const ConvKey& key) {
  thread_local std::map<ConvKey, ConvPrimitives> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kMaxShapes) cache.clear();
  const auto [n, c, h, w, o, k, stride, padding, in_block, out_block] = key;
  const int64_t oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1;
  const auto f32 = memory::data_type::f32;
  ConvPrimitives p;
  p.src = image_md(n, c, h, w, in_block);
  p.dst = image_md(n, o, oh, ow, out_block);
  p.weights_plain = memory::desc({o, c, k, k}, f32, Tag::oihw);
  p.bias = memory::desc({o}, f32, Tag::x);
  const memory::desc weights_any({o, c, k, k}, f32, Tag::any);
  // A plain result is left to the kernel's layout (padded to its block) and reordered: oneDNN's JIT kernels do not
  // write NCHW with few channels.
  const memory::desc dst_kernel = out_block ? p.dst : memory::desc({n, o, oh, ow}, f32, Tag::any);
  const memory::dims strides = {stride, stride}, pad = {padding, padding};
  const auto alg = dnnl::algorithm::convolution_direct;
  p.fwd_pd = dnnl::convolution_forward::primitive_desc(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, p.src, weights_any, p.bias, dst_kernel,
                                      strides, pad, pad),
      cpu_engine());
  const memory::desc dst_chosen = p.fwd_pd.dst_desc();
  // The backward of a plain input takes the kernel's layout and reorders (with AVX2, oneDNN's backward-weights JIT
  // kernel does not read NCHW: the reference kernel would take 300 ms on a 1-channel 28x28 batch of 32).
  const memory::desc src_backward = in_block ? p.src : memory::desc({n, c, h, w}, f32, Tag::any);
  p.bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(alg, src_backward, weights_any, dst_chosen, strides, pad, pad),
      cpu_engine(), p.fwd_pd);
  p.bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(alg, src_backward, weights_any, p.bias, dst_chosen, strides, pad, pad),
      cpu_engine(), p.fwd_pd);
  p.fwd = dnnl::convolution_forward(p.fwd_pd);
  p.bwd_data = dnnl::convolution_backward_data(p.bwd_data_pd);
  p.bwd_weights = dnnl::convolution_backward_weights(p.bwd_weights_pd);
  return cache.emplace(key, std::move(p)).first->second;
}

memory wrap(const memory::desc& md, const Tensor& t) {
  return memory(md, cpu_engine(), const_cast<float*>(t.data_ptr<float>()));
}

class BlockedConvFn : public torch::autograd::Function<BlockedConvFn> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias, int64_t stride, int64_t padding, bool plain_out) {
    const Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
    const bool blocked_in = x.dim() == 5;
    const int64_t block = channel_block();
    const int64_t n = x.size(0), c = blocked_in ? x.size(1) * x.size(4) : x.size(1);
    const int64_t h = blocked_in ? x.size(2) : x.size(2), w = x.size(3);
    const int64_t o = weight.size(0), k = weight.size(2);
    const ConvKey key{n, c, h, w, o, k, stride, padding, blocked_in ? block : 0, plain_out ? 0 : block};
    const ConvPrimitives& p = primitives(key);
    Tensor w_holder;
    const memory weights = as_layout(wrap(p.weights_plain, wc), p.fwd_pd.weights_desc(), w_holder);
    const auto& dims = p.dst.dims();
    Tensor y = plain_out ? at::empty({dims[0], dims[1], dims[2], dims[3]}, xc.options())
                         : at::empty({dims[0], dims[1] / block, dims[2], dims[3], block}, xc.options());
    const memory dst_user = wrap(p.dst, y);
    Tensor dst_holder;
    const memory dst = output_for(dst_user, p.fwd_pd.dst_desc(), dst_holder);
    execute(p.fwd, {{DNNL_ARG_SRC, wrap(p.src, xc)},
                    {DNNL_ARG_WEIGHTS, weights},
                    {DNNL_ARG_BIAS, wrap(p.bias, bc)},
                    {DNNL_ARG_DST, dst}});
    finish_output(dst, dst_user, dst_holder);
    ctx->saved_data["key"] =
        std::vector<int64_t>{n, c, h, w, o, k, stride, padding, std::get<8>(key), std::get<9>(key)};
    ctx->save_for_backward({xc, wc});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto v = ctx->saved_data["key"].toIntVector();
    const ConvPrimitives& p = primitives(ConvKey{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]});
    const auto saved = ctx->get_saved_variables();
    const Tensor& x = saved[0];
    const Tensor& weight = saved[1];
    const Tensor dy = grad_outputs[0].contiguous();
    Tensor dy_holder;
    const memory diff_dst = as_layout(wrap(p.dst, dy), p.fwd_pd.dst_desc(), dy_holder);
    Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) {
      Tensor w_holder, dd_holder;
      const memory weights = as_layout(wrap(p.weights_plain, weight), p.bwd_data_pd.weights_desc(), w_holder);
      const memory dd = as_layout(diff_dst, p.bwd_data_pd.diff_dst_desc(), dd_holder);
      dx = at::empty_like(x);
      const memory dx_user = wrap(p.src, dx);
      Tensor dx_holder;
      const memory diff_src = output_for(dx_user, p.bwd_data_pd.diff_src_desc(), dx_holder);
      execute(p.bwd_data, {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diff_src}});
      finish_output(diff_src, dx_user, dx_holder);
    }
    if (ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      Tensor dd_holder, src_holder;
      const memory dd = as_layout(diff_dst, p.bwd_weights_pd.diff_dst_desc(), dd_holder);
      const memory src = as_layout(wrap(p.src, x), p.bwd_weights_pd.src_desc(), src_holder);
      dw = at::empty_like(weight);
      db = at::empty({p.bias.dims()[0]}, weight.options());
      const memory dw_user = wrap(p.weights_plain, dw);
      Tensor dw_holder;
      const memory dw_kernel = output_for(dw_user, p.bwd_weights_pd.diff_weights_desc(), dw_holder);
      execute(p.bwd_weights, {{DNNL_ARG_SRC, src},
                              {DNNL_ARG_DIFF_DST, dd},
                              {DNNL_ARG_DIFF_WEIGHTS, dw_kernel},
                              {DNNL_ARG_DIFF_BIAS, wrap(p.bias, db)}});
      finish_output(dw_kernel, dw_user, dw_holder);
    }
    return {dx, dw, db, Tensor(), Tensor(), Tensor()};
  }
};

// oneDNN's preferred block for a typical layer (32 -> 32 channels, 3x3), and whether a JIT kernel runs it.
int64_t probe_block() {
  try {
    const auto f32 = memory::data_type::f32;
    const memory::desc any4({2, 32, 8, 8}, f32, Tag::any), wany({32, 32, 3, 3}, f32, Tag::any);
    const memory::desc bias({32}, f32, Tag::x);
    const dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, any4,
                                        wany, bias, any4, {1, 1}, {1, 1}, {1, 1}),
        cpu_engine());
    const std::string impl = pd.impl_info_str();
    if (impl.rfind("jit", 0) != 0) return 0;
    const auto& blocking = pd.src_desc().data.format_desc.blocking;
    if (pd.src_desc().data.format_kind != dnnl_blocked || blocking.inner_nblks != 1 || blocking.inner_idxs[0] != 1)
      return 0;
    const int64_t b = blocking.inner_blks[0];
    return b == 8 || b == 16 ? b : 0;
  } catch (const dnnl::error&) {
    return 0;
  }
}

}  // namespace

int64_t channel_block() {
  static const int64_t block = probe_block();
  return block;
}

Tensor conv2d_blocked(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
                      bool plain_out) {
  const int64_t block = channel_block();
  const bool blocked_in = x.dim() == 5;
  const bool ok = block > 0 && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  weight.scalar_type() == at::kFloat && bias.defined() && bias.scalar_type() == at::kFloat &&
                  weight.dim() == 4 && weight.size(2) == weight.size(3) &&
                  (x.dim() == 4 || (blocked_in && x.size(4) == block)) &&
                  weight.size(1) == (blocked_in ? x.size(1) * block : x.size(1)) && bias.numel() == weight.size(0) &&
                  (plain_out || weight.size(0) % block == 0);
  if (stride < 1 || padding < 0)
    throw Error(
        fmt::format("conv2d_blocked: needs stride >= 1 and padding >= 0, got stride {}, padding {}", stride, padding));
  if (!ok)
    throw Error(fmt::format("conv2d_blocked: needs CPU float32 x blocked [N, C/{0}, H, W, {0}] or plain [N, C, H, W], "
                            "weight [O, C, k, k], bias [O]{1}; got x {2}, weight {3}",
                            block, plain_out ? "" : " with O a multiple of the block", shape_string(x.sizes()),
                            shape_string(weight.sizes())));
  try {
    return BlockedConvFn::apply(x, weight, bias, stride, padding, plain_out);
  } catch (const dnnl::error& e) {
    throw Error(fmt::format("conv2d_blocked: oneDNN refused the convolution of x {} by weight {} (stride {}, padding "
                            "{}): {}",
                            shape_string(x.sizes()), shape_string(weight.sizes()), stride, padding, e.what()));
  }
}

#else  // no oneDNN

int64_t channel_block() { return 0; }

Tensor conv2d_blocked(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, bool) {
  throw Error("conv2d_blocked: flowlab was built without oneDNN (libdnnl-dev 2.x)");
}

#endif

}  // namespace flowlab
