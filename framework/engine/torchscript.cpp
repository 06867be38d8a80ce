// TorchScript export by tracing: the network's parameters and buffers become the module's attributes (the tracer maps
// each tensor it meets to a GetAttr of `self`), and the traced graph becomes its forward (and step) method.
#include "flowlab/torchscript.hpp"

#include <fmt/format.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>

#include <filesystem>

#include "flowlab/architecture.hpp"
#include "flowlab/errors.hpp"

namespace flowlab {

namespace {

std::string attribute_name(std::string key) {
  for (char& c : key)
    if (c == '.') c = '_';
  return key;
}

void add_traced_method(torch::jit::Module& m, const std::string& name, const std::vector<at::Tensor>& inputs,
                       const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f) {
  torch::jit::Stack stack(inputs.begin(), inputs.end());
  auto traced = torch::jit::tracer::trace(
      stack,
      [&](torch::jit::Stack in) -> torch::jit::Stack {
        std::vector<at::Tensor> args;
        for (const auto& v : in) args.push_back(v.toTensor());
        return {f(args)};
      },
      [](const at::Tensor&) { return std::string(); }, /*strict=*/false, /*force_outplace=*/false, &m);
  const auto fn = m._ivalue()->compilation_unit()->create_function(c10::QualifiedName(*m.type()->name(), name),
                                                                   traced.first->graph);
  m.type()->addMethod(fn);
}

}  // namespace

void export_torchscript(Architecture& model, const std::vector<int64_t>& event_shape, bool step_input,
                        int64_t num_classes, int64_t attr_dim, const std::string& out) {
  torch::jit::Module m("flowlab_field");
  for (const auto& p : model.named_parameters()) m.register_parameter(attribute_name(p.key()), p.value(), false);
  for (const auto& b : model.named_buffers()) m.register_buffer(attribute_name(b.key()), b.value());
  std::vector<int64_t> shape = {2};
  shape.insert(shape.end(), event_shape.begin(), event_shape.end());
  const at::Tensor x = at::randn(shape), t = at::rand({2});
  const bool labelled = num_classes > 0, attributed = attr_dim > 0;
  // The inputs after x, t (and d): [label][, attr, null].
  std::vector<at::Tensor> conditions;
  if (labelled) conditions.push_back(at::arange(2, at::kLong).remainder(num_classes));
  if (attributed) {  // null = [false, true]; 1.13's at::tensor has no bool overload
    conditions.push_back(at::randn({2, attr_dim}));
    conditions.push_back(at::arange(2, at::kLong).eq(1));
  }
  auto cond = [&](const std::vector<at::Tensor>& a, size_t at) {
    Condition c;
    if (labelled) c.label = a[at++];
    if (attributed) c.attr = a[at], c.drop = a[at + 1];
    return c;
  };
  std::vector<at::Tensor> inputs = {x, t};
  inputs.insert(inputs.end(), conditions.begin(), conditions.end());
  at::NoGradGuard no_grad;
  add_traced_method(m, "forward", inputs,
                    [&](const std::vector<at::Tensor>& a) { return model.forward(a[0], a[1], cond(a, 2)); });
  if (step_input) {
    inputs.insert(inputs.begin() + 2, at::rand({2}) * (1 - t));
    add_traced_method(m, "step", inputs, [&](const std::vector<at::Tensor>& a) {
      return model.forward_step(a[0], a[1], a[2], cond(a, 3));
    });
  }
  const std::string tmp = out + ".tmp";
  try {
    m.save(tmp);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("export: cannot write {}: {}", out, e.what_without_backtrace()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, out, ec);
  if (ec) throw Error(fmt::format("export: cannot rename {} to {}: {}", tmp, out, ec.message()));
}

}  // namespace flowlab
