// TensorBoard event files: the TFRecord framing and the Event messages byte for byte as TensorBoard's own writer
// makes them, files read back record by record (both CRCs checked), a resumed run's SessionLog START, files cut
// mid-record, and the errors. TensorBoard's EventAccumulator reads them too in the ctest tensorboard_event_accumulator
// (tests/tensorboard_write.cpp, tests/check_tensorboard.py); a trial's run (log.tensorboard) end to end in the ctest
// tensorboard_run (tests/check_tensorboard_run.sh).
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <stb/stb_image.h>  // Debian's libstb.so holds the implementation

#include "event.pb.h"  // flowlab_tensorboard_proto: the messages the writer writes
#include "flowlab/files.hpp"
#include "flowlab/tensorboard.hpp"
#include "flowlab/tensorboard_log.hpp"
#include "flowlab/trial_files.hpp"
#include "support.hpp"

namespace tb = flowlab::tensorboard;
namespace fs = std::filesystem;
using flowlab::test::message_of;
using flowlab::test::ScratchDir;

namespace {

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

uint64_t little_endian(const std::string& bytes, size_t at, int size) {
  uint64_t v = 0;
  for (int i = size - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

/// The events of a file, record by record as TensorBoard's reader takes them (tensorflow_stub's PyRecordReader):
/// both masked CRCs checked, and a last record cut short ends the file without an error. `starts` gets each
/// record's offset.
std::vector<tb::Event> read_events(const std::string& path, std::vector<size_t>* starts = nullptr) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<tb::Event> events;
  for (size_t at = 0; bytes.size() - at >= 12;) {
    const uint64_t length = little_endian(bytes, at, 8);
    REQUIRE(little_endian(bytes, at + 8, 4) == flowlab::tfrecord::masked_crc32c(bytes.data() + at, 8));
    if (bytes.size() - at - 12 < length + 4) break;  // the data or its CRC cut short
    const std::string data = bytes.substr(at + 12, length);
    REQUIRE(little_endian(bytes, at + 12 + length, 4) == flowlab::tfrecord::masked_crc32c(data.data(), data.size()));
    REQUIRE(events.emplace_back().ParseFromString(data));
    if (starts) starts->push_back(at);
    at += 12 + length + 4;
  }
  return events;
}

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("CRC-32C: the standard check value, and TensorBoard's masked CRC", "[tensorboard]") {
  const std::string check = "123456789";
  CHECK(flowlab::tfrecord::crc32c(check.data(), check.size()) == 0xE3069283u);
  // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")
  CHECK(flowlab::tfrecord::masked_crc32c(check.data(), check.size()) == 0xC78AB0E5u);
}

TEST_CASE("records and events are byte for byte those of TensorBoard's own RecordWriter", "[tensorboard]") {
  // The hex strings: tensorboard 2.21.0's event_pb2.Event(...).SerializeToString() framed by
  // tensorboard.summary.writer.record_writer.RecordWriter; equal bytes mean equal field numbers too.
  tb::Event scalar;
  scalar.set_wall_time(1.5);
  scalar.set_step(3);
  tb::Summary::Value* v = scalar.mutable_summary()->add_value();
  v->set_tag("loss");
  v->set_simple_value(0.25f);
  const std::string data = scalar.SerializeAsString();
  CHECK(flowlab::tfrecord::masked_crc32c(data.data(), data.size()) == 0x55B254D0u);
  CHECK(flowlab::tfrecord::frame(data) ==
        from_hex("1a00000000000000129bd82d09000000000000f83f10032a0d0a0b0a046c6f7373150000803ed054b255"));

  tb::Event version;
  version.set_wall_time(2.0);
  version.set_file_version("brain.Event:2");
  CHECK(flowlab::tfrecord::frame(version.SerializeAsString()) ==
        from_hex("1800000000000000a37f4b220900000000000000401a0d627261696e2e4576656e743a32ff2ee0e7"));

  tb::Event start;
  start.set_wall_time(2.0);
  start.set_step(6);
  start.mutable_session_log()->set_status(tb::SessionLog::START);
  CHECK(flowlab::tfrecord::frame(start.SerializeAsString()) ==
        from_hex("0f000000000000006d532b0909000000000000004010063a020801b3e1059a"));

  tb::Event image;
  image.set_wall_time(2.0);
  image.set_step(1);
  tb::Summary::Value* iv = image.mutable_summary()->add_value();
  iv->set_tag("img");
  iv->mutable_image()->set_height(2);
  iv->mutable_image()->set_width(3);
  iv->mutable_image()->set_colorspace(3);
  iv->mutable_image()->set_encoded_image_string("png");
  CHECK(flowlab::tfrecord::frame(image.SerializeAsString()) ==
        from_hex("2100000000000000017becf609000000000000004010012a140a120a03696d67220b0802100318032203706e673e8769ba"));
}

TEST_CASE("an event file holds the file version, scalars and PNG images, read back record by record",
          "[tensorboard]") {
  ScratchDir scratch("flowlab_tensorboard");
  const std::string dir = scratch.file("runs/a");  // parents made
  const int H = 5, W = 7, C = 3;
  std::vector<uint8_t> pixels(H * W * C);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  const double before = now();
  std::string file;
  {
    flowlab::TensorBoardWriter writer(dir);
    file = writer.file();
    writer.scalar("train/loss", 0, 2.5);
    writer.scalar("train/loss", 10, 0.125);
    writer.scalar("eval/w2", 10, 1e-3);
    writer.image("samples", 10, pixels.data(), H, W, C);
  }  // the destructor flushes
  CHECK(fs::path(file).parent_path() == fs::path(dir));
  CHECK(fs::path(file).filename().string().rfind("events.out.tfevents.", 0) == 0);

  const auto events = read_events(file);
  REQUIRE(events.size() == 5);
  CHECK(events[0].file_version() == "brain.Event:2");
  for (const auto& e : events) CHECK((e.wall_time() >= before - 1 && e.wall_time() <= now() + 1));
  const std::vector<std::tuple<std::string, int64_t, float>> scalars = {
      {"train/loss", 0, 2.5f}, {"train/loss", 10, 0.125f}, {"eval/w2", 10, 1e-3f}};
  for (size_t i = 0; i < scalars.size(); ++i) {
    const tb::Event& e = events[i + 1];
    REQUIRE(e.summary().value_size() == 1);
    CHECK(e.summary().value(0).tag() == std::get<0>(scalars[i]));
    CHECK(e.step() == std::get<1>(scalars[i]));
    CHECK(e.summary().value(0).simple_value() == std::get<2>(scalars[i]));
  }
  const tb::Summary::Value& value = events[4].summary().value(0);
  CHECK(value.tag() == "samples");
  CHECK(events[4].step() == 10);
  REQUIRE(value.has_image());
  CHECK((value.image().height() == H && value.image().width() == W && value.image().colorspace() == C));
  const std::string& png = value.image().encoded_image_string();
  int w = 0, h = 0, c = 0;
  uint8_t* decoded = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(png.data()), static_cast<int>(png.size()),
                                           &w, &h, &c, 0);
  REQUIRE(decoded);
  CHECK((w == W && h == H && c == C));
  CHECK(std::vector<uint8_t>(decoded, decoded + H * W * C) == pixels);  // PNG is lossless
  stbi_image_free(decoded);
}

TEST_CASE("a resumed writer starts a new file with a SessionLog START at its step", "[tensorboard]") {
  ScratchDir scratch("flowlab_tensorboard");
  std::string first, second;
  {
    flowlab::TensorBoardWriter a(scratch.dir.string());
    a.scalar("loss", 7, 1.0);
    a.flush();
    first = a.file();
    flowlab::TensorBoardWriter b(scratch.dir.string(), 6);
    b.scalar("loss", 6, 0.5);
    second = b.file();
  }
  CHECK(first != second);
  CHECK(read_events(first).size() == 2);
  const auto events = read_events(second);
  REQUIRE(events.size() == 3);
  CHECK(events[0].file_version() == "brain.Event:2");
  REQUIRE(events[1].has_session_log());
  CHECK(events[1].session_log().status() == tb::SessionLog::START);
  CHECK(events[1].step() == 6);
  CHECK((events[2].step() == 6 && events[2].summary().value(0).simple_value() == 0.5f));
}

TEST_CASE("a file cut in its last record yields every whole record before it", "[tensorboard]") {
  ScratchDir scratch("flowlab_tensorboard");
  std::string file;
  {
    flowlab::TensorBoardWriter writer(scratch.dir.string());
    for (int step = 0; step < 5; ++step) writer.scalar("x", step, step);
    file = writer.file();
  }
  std::vector<size_t> starts;
  REQUIRE(read_events(file, &starts).size() == 6);
  const size_t last = starts.back(), end = fs::file_size(file);
  // Cut in the length, in the length's CRC, in the data and in the data's CRC of the last record.
  const size_t cut = GENERATE_COPY(last + 3, last + 10, last + 14, end - 1);
  INFO("cut at byte " << cut << " of " << end << ", last record at " << last);
  fs::resize_file(file, cut);
  const auto events = read_events(file);
  REQUIRE(events.size() == 5);
  CHECK(events[0].file_version() == "brain.Event:2");
  for (int step = 0; step < 4; ++step) {
    CHECK(events[step + 1].step() == step);
    CHECK(events[step + 1].summary().value(0).simple_value() == float(step));
  }
}

TEST_CASE("write errors name the file", "[tensorboard]") {
  ScratchDir scratch("flowlab_tensorboard");
  SECTION("a directory that cannot be made") {
    std::ofstream(scratch.file("plain")) << "a file, not a directory";
    const std::string dir = scratch.file("plain/runs");
    CHECK(message_of<flowlab::WriteError>([&] { flowlab::TensorBoardWriter writer(dir); }) ==
          "Not a directory (ENOTDIR) creating the directory " + dir);
  }
  SECTION("a write that fails (the file size limit), and every write after it") {
    flowlab::TensorBoardWriter writer(scratch.dir.string());
    // RLIMIT_FSIZE: writes past the limit fail with EFBIG (SIGXFSZ ignored), as on a full disk; restored after.
    struct Limit {
      rlimit old{};
      void (*old_handler)(int) = std::signal(SIGXFSZ, SIG_IGN);
      explicit Limit(rlim_t size) {
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit low = old;
        low.rlim_cur = size;
        ::setrlimit(RLIMIT_FSIZE, &low);
      }
      ~Limit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
      }
    } limit(fs::file_size(writer.file()) + 100);
    const std::string expected = "File too large (EFBIG) writing " + writer.file();
    CHECK(message_of<flowlab::WriteError>([&] {
            for (int step = 0; step < 100; ++step) writer.scalar("x", step, step);
            writer.flush();
          }) == expected);
    CHECK(message_of<flowlab::WriteError>([&] { writer.scalar("x", 100, 0); }) == expected);
    CHECK(message_of<flowlab::WriteError>([&] { writer.flush(); }) == expected);
  }
  SECTION("an image that is not 1, 3 or 4 channels") {
    flowlab::TensorBoardWriter writer(scratch.dir.string());
    const std::vector<uint8_t> px(8);
    CHECK(message_of<flowlab::Error>([&] { writer.image("two", 0, px.data(), 2, 2, 2); }) ==
          writer.file() + ": image 'two' has 2 channels (valid: 1, 3, 4)");
  }
}

TEST_CASE("scatter_image: dark points on white, both axes on one scale", "[tensorboard]") {
  // (-1, -1) and (1, 1) in a 64 x 64 image: 64 / 2.2 pixels per unit around the centre (32, 32).
  const auto rgb = flowlab::scatter_image({-1.f, -1.f, 1.f, 1.f}, 64);
  REQUIRE(rgb.size() == 64 * 64 * 3);
  const auto at = [&](int row, int col) { return rgb[(row * 64 + col) * 3]; };
  CHECK(at(61, 2) < 100);   // (-1, -1): bottom left
  CHECK(at(2, 61) < 100);   // (1, 1): top right
  CHECK(at(0, 0) == 255);   // background
  CHECK(at(10, 32) == 210);  // the y axis (x = 0)
  size_t dark = 0;
  for (int i = 0; i < 64 * 64; ++i) dark += rgb[i * 3] < 100;
  CHECK(dark == 2);  // one pixel each below 256 x 256
  CHECK(message_of<flowlab::Error>([] { flowlab::scatter_image({1.f, 2.f, 3.f}, 64); }) ==
        "scatter_image: 3 values, but x and y interleaved make an even count");
}

TEST_CASE("a trial's TensorBoard run: its directory, and the quality-vs-NFE curve of an evaluation row",
          "[tensorboard]") {
  CHECK(flowlab::TensorBoardLog::run_dir("runs/x", "lr=0.01,seed=1") ==
        "runs/x/" + flowlab::trial_file_stem("lr=0.01,seed=1"));
  using flowlab::TensorBoardLog;
  CHECK(TensorBoardLog::curve("euler:steps=4") == "euler");
  CHECK(TensorBoardLog::curve("dopri5:rtol=0.001,atol=1e-06") == "dopri5");
  CHECK(TensorBoardLog::curve("euler:steps=8,grid=edm") == "euler:grid=edm");
  CHECK(TensorBoardLog::curve("heun:grid=edm,steps=8,ema_std=0.1") == "heun:grid=edm,ema_std=0.1");
  CHECK(TensorBoardLog::curve("few_step") == "few_step");
}
