// Dispatch by extension, and the text `unet info` prints.
#include "io/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "io/file_name.h"
#include "io/nifti.h"
#include "io/png.h"
#include "io/tiff.h"

namespace unet {
namespace {

bool is_nifti_name(const std::string& p) {
  return has_extension(p, ".nii") || has_extension(p, ".nii.gz") || has_extension(p, ".hdr") || has_extension(p, ".img");
}

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

const char* units_name(int code) {
  switch (code) {
    case 1: return "m";
    case 2: return "mm";
    case 3: return "um";
    default: return "(units unknown)";
  }
}

}  // namespace

bool is_image_file(const std::string& path) {
  return is_nifti_name(path) || has_extension(path, ".png") || is_tiff_name(path);
}

std::string image_stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const std::string ext : {".nii.gz", ".nii", ".hdr", ".img", ".png", ".tiff", ".tif"})
    if (name.size() > ext.size() && has_extension(name, ext)) return name.substr(0, name.size() - ext.size());
  const size_t dot = name.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

Volume read_image(const std::string& path) {
  if (has_extension(path, ".png")) return read_png(path);
  if (is_tiff_name(path)) return read_tiff(path);
  if (is_nifti_name(path)) return read_nifti(path);
  throw FileError(path + ": unknown image type, expected .nii, .nii.gz, .hdr, .img, .png, .tif or .tiff");
}

std::string describe(const Volume& v) {
  std::ostringstream o;
  const NiftiHeader* h = v.nifti.get();
  o << v.path << "\n";
  if (h) {
    o << "  format:      NIfTI-" << h->version << (h->big_endian ? " (big-endian)" : " (little-endian)") << "\n";
  } else {
    o << "  format:      " << (has_extension(v.path, ".png") ? "PNG" : is_tiff_name(v.path) ? "TIFF" : "image") << "\n";
  }
  o << "  dims:        " << v.dims << "D, " << v.w << " x " << v.h;
  if (v.dims == 3) o << " x " << v.d;
  o << " (x, y" << (v.dims == 3 ? ", z" : "") << "), " << v.c << (v.c == 1 ? " channel" : " channels") << "\n";
  o << "  datatype:    " << v.datatype;
  if (v.full_scale > 0) o << " (full scale " << num(v.full_scale) << ")";
  if (h && h->scl_slope != 0 && std::isfinite(h->scl_slope) && !(h->scl_slope == 1 && h->scl_inter == 0))
    o << ", scaled by scl_slope " << num(h->scl_slope) << " and scl_inter " << num(h->scl_inter);
  o << "\n";
  o << "  spacing:     " << num(v.spacing[0]) << " x " << num(v.spacing[1]);
  if (v.dims == 3) o << " x " << num(v.spacing[2]);
  // TIFF: mm where the file states a physical size (io/tiff.h), which leaves 1 otherwise.
  const bool tiff_mm = is_tiff_name(v.path) && v.spacing != std::array<double, 3>{1, 1, 1};
  o << " " << (h ? units_name(h->xyz_units) : tiff_mm ? "mm" : "(pixels)") << "\n";

  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  int64_t nan = 0, inf = 0, finite = 0;
  for (float x : v.voxels) {
    if (std::isnan(x)) {
      ++nan;
    } else if (std::isinf(x)) {
      ++inf;
    } else {
      lo = std::min(lo, double(x));
      hi = std::max(hi, double(x));
      sum += x;
      ++finite;
    }
  }
  o << "  values:      ";
  if (finite) {
    o << "min " << num(lo) << ", max " << num(hi) << ", mean " << num(sum / double(finite));
  } else {
    o << "no finite values";
  }
  o << "; " << nan << " NaN, " << inf << " Inf\n";

  if (h) {
    const char* from = h->sform_code > 0 ? "sform" : h->qform_code > 0 ? "qform" : "pixdim (no qform or sform)";
    o << "  orientation: " << nifti_orientation(v.affine) << " (from " << from << "; qform_code "
      << h->qform_code << ", sform_code " << h->sform_code << ")\n";
    o << "  affine:\n";
    for (int r = 0; r < 4; ++r) {
      o << "    [";
      for (int c = 0; c < 4; ++c) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %11.6g", v.affine[r * 4 + c] + 0.0);  // + 0.0: no "-0"
        o << buf;
      }
      o << " ]" << (r < 3 ? "\n" : "");
    }
  }
  std::string s = o.str();
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void check_finite(const Volume& v) {
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < v.voxels.size(); ++i)
    if (!std::isfinite(v.voxels[i])) {
      if (first < 0) first = int64_t(i);
      ++bad;
    }
  if (!bad) return;
  const int64_t x = first % v.w, y = first / v.w % v.h, z = first / (v.w * v.h) % v.d,
                c = first / v.spatial();
  throw FileError(v.path + ": voxel (x " + std::to_string(x) + ", y " + std::to_string(y) + ", z " +
                  std::to_string(z) + ", channel " + std::to_string(c) + ") is " +
                  (std::isnan(v.voxels[size_t(first)]) ? "NaN" : "Inf") + "; " + std::to_string(bad) +
                  " voxels are not finite");
}

}  // namespace unet
