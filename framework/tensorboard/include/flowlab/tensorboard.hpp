// TensorBoard event files: scalars and images of a run, for `tensorboard --logdir DIR` while it trains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "flowlab/errors.hpp"

namespace flowlab {

/// Appends events to a new TensorBoard event file. Each event is one TFRecord (a uint64 length, the masked CRC-32C
/// of the length, the serialized tensorboard.Event, the masked CRC-32C of the data; see tfrecord::frame), written in
/// one fwrite to a buffered file, so that a file cut by a kill mid-record is still read up to its last whole record.
/// Every failed write throws flowlab::WriteError (files.hpp: a flowlab::Error naming the file and the errno); after
/// one, every later write and flush throws it again, since records after a torn one could not be read.
class FLOWLAB_API TensorBoardWriter {
 public:
  /// Creates `dir` (and parents) and a new file DIR/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>
  /// whose first record is an Event with file_version "brain.Event:2". `resume_step` >= 0 then writes a SessionLog
  /// START event at that step, so that TensorBoard drops the earlier files' events at and after it (a resumed run).
  explicit TensorBoardWriter(const std::string& dir, int64_t resume_step = -1);
  /// Flushes and closes the file; errors are not reported here: call flush() first to see them.
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// A scalar (stored as a float, TensorBoard's simple_value). Cheap: one small buffered write.
  void scalar(const std::string& tag, int64_t step, double value);
  /// An image from row-major HWC uint8 pixels with 1 (grey), 3 (RGB) or 4 (RGBA) channels, encoded as PNG with
  /// stb_image_write. Throws flowlab::Error for another channel count or a size that is not positive.
  void image(const std::string& tag, int64_t step, const uint8_t* pixels, int height, int width, int channels);
  /// Hands everything written so far to the operating system (fflush): a kill -9 afterwards loses none of it. No
  /// fsync: a machine that crashes may lose the last records, and TensorBoard still reads those before them.
  void flush();
  /// The event file's path.
  const std::string& file() const { return file_; }

 private:
  void append(const std::string& event);  // one serialized Event as one record
  void check_error();                     // throws the first failed write's WriteError again

  std::string file_;
  std::FILE* out_ = nullptr;
  int error_ = 0;  // errno of the first failed write; 0 while none failed
};

/// A scatter plot of 2-D points (x, y interleaved) as a size x size RGB image (row-major HWC, for
/// TensorBoardWriter::image): white background, dark points, light grey lines at x = 0 and y = 0 where they fall in
/// the plot. Both axes share one scale (shapes are not stretched) that fits the points' range with a 5% margin;
/// points that are not finite are left out. Throws flowlab::Error for an odd length or a size below 1.
FLOWLAB_API std::vector<uint8_t> scatter_image(const std::vector<float>& xy, int size);

/// TFRecord framing, as TensorFlow's tensorflow/core/lib/io/record_writer.cc writes it and TensorBoard reads it.
namespace tfrecord {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): crc32c("123456789") = 0xE3069283.
FLOWLAB_API uint32_t crc32c(const void* data, size_t size);
/// The masked CRC that records carry: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so that a CRC of data that holds
/// CRCs is not trivially related to them (record_writer.cc's crc32c::Mask).
FLOWLAB_API uint32_t masked_crc32c(const void* data, size_t size);
/// One record: uint64 little-endian length, uint32 masked CRC of those 8 bytes, the data, uint32 masked CRC of the
/// data (all little-endian).
FLOWLAB_API std::string frame(const std::string& data);

}  // namespace tfrecord

}  // namespace flowlab
