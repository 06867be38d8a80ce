// flowlab_tb_write DIR: event files for the ctest tensorboard_event_accumulator, which reads them back with
// TensorBoard's own EventAccumulator (tests/check_tensorboard.py) against the spec files written beside them:
//   DIR/run       a run and its resume: `loss` at steps 0-9, 0-5 from the first writer, 6-9 from the second, whose
//                 SessionLog START at step 6 drops the first writer's steps 6-9 (written with other values);
//                 `samples` (a 96 x 96 RGB scatter plot) at step 5 and `mask` (a 4 x 6 grey image) at step 0.
//   DIR/cut       `x` at steps 0-4, the file cut in the middle of its last record: TensorBoard reads steps 0-3.
//   DIR/run.json, DIR/cut.json   what check_tensorboard.py --spec must find there.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowlab/tensorboard.hpp"

namespace {

double first_loss(int step) { return 1.0 / (1.0 + step); }
double resumed_loss(int step) { return 0.5 / (1.0 + step); }

void write_spec(const std::string& path, const std::string& json) {
  std::ofstream out(path);
  out << json << "\n";
  if (!out.flush()) throw flowlab::Error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: flowlab_tb_write DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  {
    flowlab::TensorBoardWriter first((dir / "run").string());
    for (int step = 0; step < 10; ++step) first.scalar("loss", step, first_loss(step));
    std::vector<float> xy;
    for (int i = 0; i < 200; ++i) xy.push_back(std::cos(i * 0.1f) * 3), xy.push_back(std::sin(i * 0.1f) - 2);
    first.image("samples", 5, flowlab::scatter_image(xy, 96).data(), 96, 96, 3);
    const std::vector<uint8_t> mask(4 * 6, 200);
    first.image("mask", 0, mask.data(), 4, 6, 1);
    first.flush();
    flowlab::TensorBoardWriter resumed((dir / "run").string(), 6);
    for (int step = 6; step < 10; ++step) resumed.scalar("loss", step, resumed_loss(step));
    resumed.flush();
  }
  std::vector<double> loss;
  for (int step = 0; step < 10; ++step) loss.push_back(step < 6 ? first_loss(step) : resumed_loss(step));
  write_spec((dir / "run.json").string(),
             fmt::format(R"({{"scalars": {{"loss": {{"steps": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "values": [{:.9g}]}}}},)"
                         R"( "images": {{"samples": {{"steps": [5], "width": 96, "height": 96}},)"
                         R"( "mask": {{"steps": [0], "width": 6, "height": 4}}}}}})",
                         fmt::join(loss, ", ")));

  std::string cut_file;
  {
    flowlab::TensorBoardWriter writer((dir / "cut").string());
    for (int step = 0; step < 5; ++step) writer.scalar("x", step, step * 0.25);
    cut_file = writer.file();
  }
  std::filesystem::resize_file(cut_file, std::filesystem::file_size(cut_file) - 7);  // 7 bytes short of whole
  write_spec((dir / "cut.json").string(),
             R"({"scalars": {"x": {"steps": [0, 1, 2, 3], "values": [0, 0.25, 0.5, 0.75]}}})");
  std::cout << "flowlab_tb_write: wrote " << (dir / "run").string() << " and " << cut_file << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "flowlab_tb_write: " << e.what() << "\n";
  return 1;
}
