// TensorBoard event files (tensorboard.hpp). The format is TensorFlow's summary file: a sequence of TFRecords
// (tensorflow/core/lib/io/record_writer.cc), each one serialized tensorboard.Event (tensorboard/compat/proto/
// event.proto; ours, with only the fields we write, is proto/event.proto). TensorBoard reads the files of a run
// directory in name order (tensorboard/backend/event_processing/directory_watcher.py), a file up to its last whole
// record (a short one ends it for now: event_file_loader.py retries it from its start, which is why a writer never
// appends to a file that exists, a killed run's included), and, in a file_version "brain.Event:2" file, drops
// the events at and after a SessionLog START's step that it read before (event_accumulator.py's
// _CheckForRestartAndMaybePurge): that is how a resumed run replaces what it computes again.
#include "flowlab/tensorboard.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>

#include <boost/crc.hpp>
#include <fmt/format.h>
#include <stb/stb_image_write.h>  // Debian's libstb (libstb.so holds the implementation)

#include "event.pb.h"  // generated from proto/event.proto
#include "flowlab/files.hpp"

namespace flowlab {

namespace tb = flowlab::tensorboard;

namespace tfrecord {

uint32_t crc32c(const void* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;  // CRC-32C, as crc32c.h's Value()
  crc.process_bytes(data, size);
  return crc.checksum();
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string frame(const std::string& data) {
  const auto put = [](std::string& out, uint64_t v, int bytes) {  // little-endian, whatever the machine's order
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  std::string record;
  record.reserve(data.size() + 16);
  put(record, data.size(), 8);
  put(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put(record, masked_crc32c(data.data(), data.size()), 4);
  return record;
}

}  // namespace tfrecord

namespace {

tb::Event event_now(int64_t step) {
  tb::Event event;
  event.set_wall_time(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  event.set_step(step);
  return event;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t resume_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw WriteError(dir, ec.value(), "creating the directory");
  // TensorFlow's name (summary_file_writer.cc: events.out.tfevents.TIME.HOST.PID.UID): the process-wide counter
  // keeps two writers of one process apart, and "x" refuses a file that exists rather than appending to it.
  static std::atomic<unsigned> counter{0};
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  file_ = (std::filesystem::path(dir) /
           fmt::format("events.out.tfevents.{}.{}.{}.{}", std::time(nullptr), host, ::getpid(), counter++))
              .string();
  out_ = std::fopen(file_.c_str(), "wbxe");  // e: O_CLOEXEC
  if (!out_) throw WriteError(file_, errno, "creating");
  try {
    tb::Event version = event_now(0);
    version.set_file_version("brain.Event:2");
    append(version.SerializeAsString());
    if (resume_step >= 0) {
      tb::Event start = event_now(resume_step);
      start.mutable_session_log()->set_status(tb::SessionLog::START);
      append(start.SerializeAsString());
    }
    flush();  // TensorBoard sees the run at once
  } catch (...) {
    std::fclose(out_);
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() { std::fclose(out_); }

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  tb::Event event = event_now(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  append(event.SerializeAsString());
}

void TensorBoardWriter::image(const std::string& tag, int64_t step, const uint8_t* pixels, int height, int width,
                              int channels) {
  if (channels != 1 && channels != 3 && channels != 4)
    throw Error(fmt::format("{}: image '{}' has {} channels (valid: 1, 3, 4)", file_, tag, channels));
  if (height < 1 || width < 1)
    throw Error(fmt::format("{}: image '{}' is {}x{} pixels (both must be positive)", file_, tag, width, height));
  std::string png;
  const auto to_string = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(to_string, &png, width, height, channels, pixels, width * channels))
    throw Error(
        fmt::format("{}: image '{}' ({}x{}, {} channels): PNG encoding failed", file_, tag, width, height, channels));
  tb::Event event = event_now(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  tb::Summary::Image* image = v->mutable_image();
  image->set_height(height);
  image->set_width(width);
  image->set_colorspace(channels);
  image->set_encoded_image_string(std::move(png));
  append(event.SerializeAsString());
}

void TensorBoardWriter::flush() {
  check_error();
  errno = 0;
  if (std::fflush(out_) != 0) {
    error_ = errno ? errno : EIO;
    check_error();
  }
}

void TensorBoardWriter::append(const std::string& event) {
  check_error();
  const std::string record = tfrecord::frame(event);
  errno = 0;
  if (std::fwrite(record.data(), 1, record.size(), out_) != record.size()) {
    error_ = errno ? errno : EIO;
    check_error();
  }
}

void TensorBoardWriter::check_error() {
  if (error_) throw WriteError(file_, error_);
}

std::vector<uint8_t> scatter_image(const std::vector<float>& xy, int size) {
  if (xy.size() % 2 != 0)
    throw Error(fmt::format("scatter_image: {} values, but x and y interleaved make an even count", xy.size()));
  if (size < 1) throw Error(fmt::format("scatter_image: size {} (must be at least 1)", size));
  std::vector<uint8_t> rgb(static_cast<size_t>(size) * size * 3, 255);
  const auto paint = [&](int row, int col, uint8_t r, uint8_t g, uint8_t b) {
    if (row < 0 || row >= size || col < 0 || col >= size) return;
    uint8_t* px = &rgb[(static_cast<size_t>(row) * size + col) * 3];
    px[0] = r, px[1] = g, px[2] = b;
  };
  const auto finite = [&](size_t i) { return std::isfinite(xy[i]) && std::isfinite(xy[i + 1]); };
  double lo[2] = {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  double hi[2] = {-lo[0], -lo[1]};
  for (size_t i = 0; i < xy.size(); i += 2) {
    if (!finite(i)) continue;
    for (int k = 0; k < 2; ++k) lo[k] = std::min(lo[k], double(xy[i + k])), hi[k] = std::max(hi[k], double(xy[i + k]));
  }
  if (lo[0] > hi[0]) return rgb;  // no finite point
  // One scale for both axes: the wider of the two ranges (1 for a single point) plus 5% on each side, centred.
  const double span = std::max(hi[0] - lo[0], hi[1] - lo[1]);
  const double scale = size / ((span > 0 ? span : 1.0) * 1.1);  // pixels per unit
  const double cx = (lo[0] + hi[0]) / 2, cy = (lo[1] + hi[1]) / 2;
  const auto pixel = [&](double offset) {  // clamped before the cast: an axis far outside stays off the image
    return static_cast<int>(std::floor(std::clamp(size / 2.0 + offset * scale, -1.0, double(size))));
  };
  const int axis_col = pixel(-cx), axis_row = pixel(cy);  // x = 0 and y = 0; rows grow downwards, y upwards
  for (int i = 0; i < size; ++i) paint(i, axis_col, 210, 210, 210), paint(axis_row, i, 210, 210, 210);
  const int radius = size / 256;  // one pixel up to 255 x 255, then wider, so that dots stay visible
  for (size_t i = 0; i < xy.size(); i += 2) {
    if (!finite(i)) continue;
    const int col = pixel(xy[i] - cx), row = pixel(cy - xy[i + 1]);
    for (int dr = -radius; dr <= radius; ++dr)
      for (int dc = -radius; dc <= radius; ++dc) paint(row + dr, col + dc, 25, 45, 100);
  }
  return rgb;
}

}  // namespace flowlab
