// Any NumPy array as data: an .npy file, or one array of an .npz archive (read through Debian's libzip; .npy parsed
// by the format's specification in plugins/common/npy.cpp). Rows along the first axis are samples, of any shape
// ([N, D] tables, [N, C, H, W] images; `layout` turns [N, H, W, C] or [N, H, W] into [N, C, H, W]). Optional integer
// labels: an array of the same .npz, or a separate .npy file. A fixed, seeded held-out split (flowlab::holdout_split,
// 20% by default, like digits) feeds reference(). uint8 arrays are scaled to [-1, 1] as x / 127.5 - 1 by default
// (quantization step 2/255); other types are kept as stored unless `normalize` says otherwise. The file is read
// once; reference_source() also states the memory the arrays take.
#include <fmt/format.h>

#include "../common/npy.hpp"
#include "loaded_array.hpp"

namespace {

constexpr const char* kOwner = "dataset/array";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Options of dataset/array.
struct ArrayOptions {
  std::string file;       ///< .npy or .npz (required)
  std::string key;        ///< the array's name in an .npz (default arr_0, numpy.savez's first positional array)
  std::string labels;     ///< labels: a name in the same .npz, or a .npy path; empty for none
  std::string layout;     ///< keep, channels_last or add_channel
  std::string normalize;  ///< auto, none, scale or standardize
  double holdout;         ///< held-out fraction
  explicit ArrayOptions(const flowlab::Params& p)
      : file(p.str("file")),
        key(p.str("key")),
        labels(p.str("labels")),
        layout(p.str("layout")),
        normalize(p.str("normalize")),
        holdout(p.real("holdout")) {
    if (file.empty()) throw flowlab::ParamError(kOwner, "file", "is required (an .npy or .npz file)");
    if (!ends_with(file, ".npy") && !ends_with(file, ".npz"))
      throw flowlab::ParamError(kOwner, "file", fmt::format("must end in .npy or .npz; got '{}'", file));
    if (ends_with(file, ".npy") && !labels.empty() && !ends_with(labels, ".npy"))
      throw flowlab::ParamError(kOwner, "labels",
                                fmt::format("must be another .npy file when 'file' is an .npy; got '{}'", labels));
  }
};

class ArrayDataset final : public flowlab::importers::LoadedArray {
 public:
  explicit ArrayDataset(const flowlab::Params& p) : opt_(p) {
    namespace npy = flowlab::npy;
    const bool npz = ends_with(opt_.file, ".npz");
    const std::string where = npz ? opt_.file + ":" + opt_.key : opt_.file;
    at::Tensor x = npz ? npy::read_npz(kOwner, opt_.file, opt_.key) : npy::read_npy(kOwner, opt_.file);
    at::Tensor y;
    if (!opt_.labels.empty())
      y = ends_with(opt_.labels, ".npy") ? npy::read_npy(kOwner, opt_.labels)
                                         : npy::read_npz(kOwner, opt_.file, opt_.labels);
    x = flowlab::importers::apply_layout(kOwner, where, x, opt_.layout);
    load(kOwner, where, x, y, opt_.holdout, opt_.normalize);
  }

 private:
  ArrayOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(
    dataset, array, ArrayDataset, "1.0.0",
    "a NumPy array from an .npy or .npz file (rows are samples, any shape; optional labels; 20% held out)",
    FLOWLAB_PARAM(file, string, "", "an .npy file, or an .npz archive (numpy.savez/savez_compressed)")
        FLOWLAB_PARAM(key, string, "arr_0", "the array's name in an .npz") FLOWLAB_PARAM(
            labels, string, "", "integer labels [N]: an array name in the same .npz, or an .npy file; empty: none")
            FLOWLAB_PARAM(layout, enum(keep | channels_last | add_channel), "keep",
                          "keep; channels_last: [N, H, W, C] to [N, C, H, W]; add_channel: [N, ...] to [N, 1, ...]")
                FLOWLAB_PARAM(normalize, enum(auto | none | scale | standardize), "auto",
                              "auto: uint8 to [-1, 1] (x / 127.5 - 1), others as stored; scale: training min/max to "
                              "[-1, 1]; standardize: training mean 0, std 1 (over all values)")
                    FLOWLAB_PARAM(holdout, float, "0.2", "fraction held out for reference() (seeded, fixed)"))
