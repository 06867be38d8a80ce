// The TensorBoard log of one trial: scalars and sample images from the worker's progress and evaluation rows.
#include "flowlab/tensorboard_log.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowlab/images.hpp"
#include "flowlab/tensorboard.hpp"
#include "flowlab/trial_files.hpp"

namespace flowlab {

namespace {

constexpr int kScatterSize = 256;    // pixels of a side of a 2-D scatter plot
constexpr int64_t kGridImages = 64;  // images of a grid of image samples, 8 per row
constexpr double kFlushSeconds = 1;  // the most time between flushes while training logs

}  // namespace

TensorBoardLog::TensorBoardLog(const std::string& dir, const TrialConfig& trial, int64_t start_step)
    : writer_(std::make_unique<TensorBoardWriter>(run_dir(dir, trial.id), start_step)),
      metric_labels_(trial.eval.metric_labels),
      last_flush_(std::chrono::steady_clock::now()) {
  for (const auto& stage : plan_stages(trial)) stage_steps_[stage.round] = stage.steps;
}

TensorBoardLog::~TensorBoardLog() = default;

std::string TensorBoardLog::run_dir(const std::string& dir, const std::string& trial_id) {
  return dir + "/" + trial_file_stem(trial_id);
}

std::string TensorBoardLog::curve(const std::string& label) {
  const size_t colon = label.find(':');
  if (colon == std::string::npos) return label;
  std::vector<std::string> kept;
  size_t at = colon + 1;
  while (at <= label.size()) {
    const size_t comma = std::min(label.find(',', at), label.size());
    const std::string part = label.substr(at, comma - at);
    const std::string key = part.substr(0, part.find('='));
    if (key != "steps" && key != "rtol" && key != "atol") kept.push_back(part);
    at = comma + 1;
  }
  return kept.empty() ? label.substr(0, colon) : fmt::format("{}:{}", label.substr(0, colon), fmt::join(kept, ","));
}

void TensorBoardLog::progress(const Progress& p) {
  const int64_t step = p.step - 1;
  writer_->scalar("train/loss", step, p.loss);
  writer_->scalar("train/grad_norm", step, p.grad_norm);
  writer_->scalar("train/lr", step, p.lr);
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_flush_).count() >= kFlushSeconds) flush();
}

void TensorBoardLog::evaluated(int64_t step, const EvalRow& row) {
  if (!row.error.empty()) return;
  const std::string tag = "eval/" + row.label + "/";
  for (size_t m = 0; m < row.metrics.size() && m < metric_labels_.size(); ++m)
    writer_->scalar(tag + metric_labels_[m], step, row.metrics[m]);
  writer_->scalar(tag + "nfe", step, double(row.nfe));
  writer_->scalar(tag + "straightness", step, row.straightness);
  const auto stage = stage_steps_.find(row.round);
  if (stage != stage_steps_.end() && row.train_step == stage->second) {  // a final row: its point on the NFE axis
    const std::string vs =
        "vs_nfe/" + (row.round > 0 ? fmt::format("round{}/", row.round) : "") + curve(row.label) + "/";
    for (size_t m = 0; m < row.metrics.size() && m < metric_labels_.size(); ++m)
      writer_->scalar(vs + metric_labels_[m], row.nfe, row.metrics[m]);
  }
  const Array& s = row.samples;
  if (s.shape.size() == 2 && s.shape[1] == 2 && s.shape[0] > 0) {
    const std::vector<uint8_t> px = scatter_image(s.values, kScatterSize);
    writer_->image("samples/" + row.label, step, px.data(), kScatterSize, kScatterSize, 3);
  } else if (s.shape.size() == 4 && s.shape[0] > 0) {
    Array first = s;
    first.shape[0] = std::min(s.shape[0], kGridImages);
    first.values.resize(size_t(first.shape[0] * s.shape[1] * s.shape[2] * s.shape[3]));
    int width = 0, height = 0;
    const std::vector<uint8_t> px = image_grid(first, 8, width, height);
    if (!px.empty()) writer_->image("samples/" + row.label, step, px.data(), height, width, int(s.shape[1]));
  }
  flush();
}

void TensorBoardLog::flush() {
  writer_->flush();
  last_flush_ = std::chrono::steady_clock::now();
}

TrialHooks TensorBoardLog::hooks() {
  TrialHooks h;
  h.evaluated = [this](int64_t step, const EvalRow& row) { evaluated(step, row); };
  h.checkpointing = [this] { flush(); };
  return h;
}

}  // namespace flowlab
