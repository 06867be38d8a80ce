// A velocity field written in PyTorch: a TorchScript module (torch.jit.script or torch.jit.trace, saved with
// torch.jit.save) whose forward is forward(x: Tensor, t: Tensor) -> Tensor, x [B, ...] and t [B] as flowlab passes them
// (noise at t = 0, data at t = 1), returning v shaped like x. Its parameters become this network's, so a module with
// trainable parameters trains like any architecture, and train.steps: 0 evaluates it as it is (flowlab's solvers,
// grids and metrics on a model trained elsewhere). `flowlab export` writes such a module.
// The module is loaded and checked when the plugin is created: the file must exist and load, forward must take
// exactly (x, t), and on a probe batch of 2 it must return x's shape (checked in build(), which knows the shape).
// Unconditioned only, and no step input.
#include <fmt/format.h>
#include <torch/script.h>

#include <filesystem>
#include <sstream>

#include "flowlab/architecture.hpp"

namespace {

using flowlab::Tensor;

class TorchScriptArchitecture final : public flowlab::Architecture {
 public:
  explicit TorchScriptArchitecture(const flowlab::Params& p) : owner_(p.owner()), file_(p.str("file")) {
    if (file_.empty()) throw flowlab::ParamError(owner_, "file", "must name a TorchScript file (torch.jit.save)");
    std::error_code ec;
    const std::string path = std::filesystem::absolute(file_, ec).string();
    if (!std::filesystem::is_regular_file(path, ec))
      throw flowlab::ParamError(owner_, "file", fmt::format("'{}' does not exist or is not a file", path));
    try {
      module_ = torch::jit::load(path);
    } catch (const c10::Error& e) {
      throw flowlab::ParamError(
          owner_, "file",
          fmt::format("'{}' is not a TorchScript module: {}", path, first_line(e.what_without_backtrace())));
    }
    const auto method = module_.find_method("forward");
    if (!method)
      throw flowlab::ParamError(owner_, "file",
                                fmt::format("'{}' has no forward method; expected forward(x: Tensor, "
                                            "t: Tensor) -> Tensor",
                                            path));
    const auto& schema = method->function().getSchema();
    bool ok = schema.arguments().size() == 3 && schema.returns().size() == 1;
    for (size_t i = 1; ok && i < 3; ++i) ok = schema.arguments()[i].type()->kind() == c10::TypeKind::TensorType;
    ok = ok && schema.returns()[0].type()->kind() == c10::TypeKind::TensorType;
    if (!ok) {
      std::ostringstream got;
      got << schema;
      throw flowlab::ParamError(owner_, "file",
                                fmt::format("'{}': forward must be forward(x: Tensor, t: Tensor) -> "
                                            "Tensor, got {}",
                                            path, got.str()));
    }
  }

  void build(const flowlab::ArchitectureSpec& spec) override {
    if (spec.num_classes > 0 || spec.attr_dim > 0)
      throw flowlab::Error(fmt::format("{}: takes no condition (model.condition: none)", owner_));
    for (const auto& p : module_.named_parameters(true))
      register_parameter(name_of(p.name), p.value, p.value.requires_grad());
    for (const auto& b : module_.named_buffers(true)) register_buffer(name_of(b.name), b.value);
    std::vector<int64_t> shape = {2};
    shape.insert(shape.end(), spec.event_shape.begin(), spec.event_shape.end());
    at::NoGradGuard no_grad;
    const Tensor x = at::zeros(shape), v = call(x, at::full({2}, 0.5));
    if (v.sizes() != x.sizes())
      throw flowlab::Error(fmt::format("{}: forward(x, t) returned {} for x of shape {}; it must return x's shape",
                                       owner_, flowlab::shape_string(v.sizes()), flowlab::shape_string(x.sizes())));
  }

  Tensor forward(const Tensor& x, const Tensor& t, const flowlab::Condition&) override { return call(x, t); }
  void train(bool on) override {  // dropout and the like in the scripted module follow flowlab's train/eval
    module_.train(on);
    flowlab::Architecture::train(on);
  }

 private:
  static std::string name_of(std::string n) {
    for (char& c : n)
      if (c == '.') c = '_';
    return n;
  }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
  Tensor call(const Tensor& x, const Tensor& t) {
    c10::IValue out;
    try {
      out = module_.forward({x, t.dim() == 1 && t.stride(0) == 0 ? t.contiguous() : t});
    } catch (const c10::Error& e) {
      throw flowlab::Error(fmt::format("{}: forward failed on x {}: {}", owner_, flowlab::shape_string(x.sizes()),
                                       first_line(e.what_without_backtrace())));
    }
    if (!out.isTensor())
      throw flowlab::Error(fmt::format("{}: forward returned a {}, expected a Tensor", owner_, out.tagKind()));
    return out.toTensor();
  }

  std::string owner_, file_;
  torch::jit::Module module_;
};

}  // namespace

FLOWLAB_PLUGIN(architecture, torchscript, TorchScriptArchitecture, "1.0.0",
               "a TorchScript module forward(x, t) -> v (written by PyTorch or flowlab export) as the velocity field",
               FLOWLAB_PARAM(file, string, "", "the TorchScript file (torch.jit.save)"))
