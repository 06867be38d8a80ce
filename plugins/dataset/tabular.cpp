// Any table as data (gene expression, measurements): an HDF5 dataset (.h5/.hdf5, read through Debian's libhdf5) or a
// numeric CSV (optionally .gz, an optional header line), rows are samples. Preprocessing in this order: log1p, then
// `normalize`: scale each column to [-1, 1], or standardise it to mean 0 and std 1. A fixed, seeded 20% of the rows
// (flowlab::holdout_split, ceil(0.2 n), the same on every machine) is held out: sample(), size() and take() see the
// other rows, reference() only the held-out ones. The normalisation statistics come from the training rows alone
// and are applied to both, so nothing of the held-out rows reaches the model. A table needs at least 2 rows.
// HDF5 datasets of 3 or more dimensions (images stored as [N, C, H, W], or [N, H, W, C] with `layout:
// channels_last`, or [N, H, W] with `layout: add_channel`) are samples of that shape, held as float32; their
// normalisation statistics are over all values of the training samples (one scale for every pixel), and an 8-bit
// unsigned dataset reports its quantization step (2/255 on [-1, 1] with `normalize: scale` over 0..255).
#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/tabular.
struct TabularOptions {
  std::string file;       ///< .h5/.hdf5 or .csv(.gz) (required)
  std::string dataset;    ///< HDF5 dataset path (default /data)
  bool log1p;             ///< apply log(1 + x) first (default false)
  std::string normalize;  ///< none, scale ([-1, 1] per column) or standardize (default standardize)
  std::string layout;     ///< N-D HDF5 only: keep, channels_last ([N, H, W, C]) or add_channel ([N, H, W])
  explicit TabularOptions(const flowlab::Params& p)
      : file(p.str("file")),
        dataset(p.str("dataset")),
        log1p(p.boolean("log1p")),
        normalize(p.str("normalize")),
        layout(p.str("layout")) {
    if (file.empty()) throw flowlab::ParamError("dataset/tabular", "file", "is required (an .h5/.hdf5 or .csv file)");
  }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// An HDF5 dataset: rank 1 or 2 as a [rows, columns] float64 table; rank 3 and more as float32 samples [N, ...].
/// `bytes` tells whether the stored type is 8-bit unsigned (pixels).
at::Tensor read_hdf5(const std::string& file, const std::string& name, bool& bytes) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported below, not printed by HDF5
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw flowlab::Error(fmt::format("dataset/tabular: cannot open HDF5 file '{}'", file));
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  if (d < 0) {
    H5Fclose(f);
    throw flowlab::Error(
        fmt::format("dataset/tabular: '{}' has no dataset '{}' (set parameter 'dataset')", file, name));
  }
  const hid_t space = H5Dget_space(d);
  const hid_t type = H5Dget_type(d);
  bytes = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 2)), 1);
  if (rank >= 1) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  at::Tensor out;
  herr_t status = -1;
  if (rank == 1 || rank == 2) {
    out = at::empty({static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1])}, at::kDouble);
    status = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr<double>());
  } else if (rank > 2) {
    std::vector<int64_t> shape(dims.begin(), dims.end());
    out = at::empty(shape, at::kFloat);
    status = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr<float>());
  }
  H5Tclose(type), H5Sclose(space), H5Dclose(d), H5Fclose(f);
  if (rank < 1)
    throw flowlab::Error(
        fmt::format("dataset/tabular: '{}:{}' is a scalar; expected a table or an array of samples", file, name));
  if (status < 0) throw flowlab::Error(fmt::format("dataset/tabular: cannot read '{}:{}' as numbers", file, name));
  return out;
}

at::Tensor read_csv(const std::string& file) {
  const std::string text = flowlab::read_data_file("dataset/tabular", file, "the path given in parameter 'file'");
  std::vector<double> values;
  int64_t rows = 0, cols = -1, line_no = 0;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<double> row;
    std::istringstream fields(line);
    std::string v;
    bool numeric = true;
    while (std::getline(fields, v, ',')) {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str()) numeric = false;
      row.push_back(x);
    }
    if (!numeric) {
      if (rows == 0 && cols < 0) continue;  // header
      throw flowlab::Error(fmt::format("dataset/tabular: {}:{}: non-numeric value in '{}'", file, line_no, line));
    }
    if (cols >= 0 && static_cast<int64_t>(row.size()) != cols)
      throw flowlab::Error(
          fmt::format("dataset/tabular: {}:{}: {} columns, expected {}", file, line_no, row.size(), cols));
    cols = static_cast<int64_t>(row.size());
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) throw flowlab::Error(fmt::format("dataset/tabular: '{}' has no numeric rows", file));
  return at::tensor(values, at::kDouble).reshape({rows, cols});
}

class Tabular final : public flowlab::Dataset {
 public:
  explicit Tabular(const flowlab::Params& p) : opt_(p) {
    bool bytes = false;
    at::Tensor x = ends_with(opt_.file, ".h5") || ends_with(opt_.file, ".hdf5")
                       ? read_hdf5(opt_.file, opt_.dataset, bytes)
                       : read_csv(opt_.file);
    const bool samples = x.dim() > 2;  // N-D: images and other arrays of samples
    if (!samples && opt_.layout != "keep")
      throw flowlab::ParamError(
          "dataset/tabular", "layout",
          fmt::format("is '{}', which applies only to HDF5 datasets of 3 or more dimensions; '{}' is a 2-D table",
                      opt_.layout, opt_.file));
    if (opt_.layout == "channels_last") {
      if (x.dim() != 4)
        throw flowlab::ParamError(
            "dataset/tabular", "layout",
            fmt::format("is channels_last, which needs a 4-D dataset [N, H, W, C]; '{}:{}' has {} dimensions",
                        opt_.file, opt_.dataset, x.dim()));
      x = x.permute({0, 3, 1, 2}).contiguous();
    } else if (opt_.layout == "add_channel") {
      x = x.unsqueeze(1);
    }
    if (opt_.log1p) {
      if ((x <= -1).any().item<bool>())
        throw flowlab::ParamError("dataset/tabular", "log1p",
                                  fmt::format("needs values > -1, but '{}' has some", opt_.file));
      x = at::log1p(x);
    }
    const int64_t n = x.size(0);
    if (n < 2)
      throw flowlab::Error(
          fmt::format("dataset/tabular: '{}' has {} row; at least 2 are needed (20% are held out)", opt_.file, n));
    const auto [train_rows, heldout_rows] = flowlab::holdout_split(n);
    const at::Tensor train = x.index_select(0, train_rows);
    if (samples) {
      // one statistic over all values of the training samples (computed in float64)
      const at::Tensor t = train.to(at::kDouble);
      if (opt_.normalize == "scale") {
        const double lo = t.min().item<double>(), hi = t.max().item<double>();
        const double half = std::max(hi - lo, 1e-12) / 2;
        x = (x - lo) / half - 1;
        if (bytes && !opt_.log1p) step_ = 1 / half;
      } else if (opt_.normalize == "standardize") {
        const double sd = std::max(t.std().item<double>(), 1e-12);
        x = (x - t.mean().item<double>()) / sd;
        if (bytes && !opt_.log1p) step_ = 1 / sd;
      } else if (bytes && !opt_.log1p) {
        step_ = 1;
      }
    } else if (opt_.normalize == "scale") {
      const at::Tensor lo = std::get<0>(train.min(0, true)), hi = std::get<0>(train.max(0, true));
      x = (x - lo) / (hi - lo).clamp_min(1e-12) * 2 - 1;
    } else if (opt_.normalize == "standardize") {
      const at::Tensor sd = train.size(0) > 1 ? train.std(0, true, true) : at::ones_like(train);
      x = (x - train.mean(0, true)) / sd.clamp_min(1e-12);
    }
    table_ = x.index_select(0, train_rows);
    heldout_ = x.index_select(0, heldout_rows);
    source_ = fmt::format("held-out split (seeded 20%, {} of {})", heldout_.size(0), n);
  }
  std::vector<int64_t> event_shape() const override {
    return std::vector<int64_t>(table_.sizes().begin() + 1, table_.sizes().end());
  }
  double quantization_step() const override { return step_; }
  int64_t size() const override { return table_.size(0); }
  flowlab::Batch take(const at::Tensor& idx, const at::TensorOptions& o) const override { return rows(table_, idx, o); }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    return take(at::randint(size(), {n}, at::kLong), o);
  }
  flowlab::Batch reference(int64_t n, const at::TensorOptions& o) const override {
    if (n < 0) throw flowlab::Error(fmt::format("dataset/tabular: reference: n must be >= 0, got {}", n));
    return rows(heldout_, at::randperm(heldout_.size(0), at::kLong).slice(0, 0, n), o);
  }
  std::string reference_source() const override { return source_; }

 private:
  static flowlab::Batch rows(const at::Tensor& table, const at::Tensor& idx, const at::TensorOptions& o) {
    return {flowlab::to_device(table.index_select(0, idx.to(at::kCPU, at::kLong)).to(o.dtype().toScalarType()), o),
            at::Tensor(), at::Tensor()};
  }

  TabularOptions opt_;
  at::Tensor table_, heldout_;  // training and held-out rows (or samples), normalised
  std::string source_;
  double step_ = 0;  // 8-bit N-D datasets: the bin width after normalisation
};

}  // namespace

FLOWLAB_PLUGIN(
    dataset, tabular, Tabular, "2.1.0",
    "rows of an HDF5 dataset (2-D tables or N-D arrays of samples) or CSV file (20% held out), with "
    "log1p/scaling",
    FLOWLAB_PARAM(file, string, "", "an .h5/.hdf5 file or a numeric .csv (or .csv.gz)")
        FLOWLAB_PARAM(dataset, string, "/data", "the HDF5 dataset to read (2-D, or N-D samples [N, ...])")
            FLOWLAB_PARAM(log1p, bool, "false", "apply log(1 + x) first")
                FLOWLAB_PARAM(normalize, enum(none | scale | standardize), "standardize",
                              "per column (N-D: over all values): none, scale to [-1, 1], or mean 0 / std 1")
                    FLOWLAB_PARAM(layout, enum(keep | channels_last | add_channel), "keep",
                                  "N-D HDF5 only: keep; channels_last: [N, H, W, C] to [N, C, H, W]; add_channel: "
                                  "[N, H, W] to [N, 1, H, W]"))
