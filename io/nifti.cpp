// NIfTI reading and writing through nifti_clib. The header is read and checked
// by hand first (zlib reads .nii and .nii.gz alike): nifti_clib prints to stderr
// and may allocate whatever a corrupt dim[] asks for, so it only ever sees files
// whose header we have already accepted.
#include "io/nifti.h"

#include <nifti2_io.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "io/atomic_file.h"
#include "io/file_name.h"

namespace unet {
namespace {

// Float voxels we are willing to allocate: 16 GiB.
constexpr int64_t kMaxBytes = int64_t(1) << 34;

struct Type {
  int code;
  const char* name;
  int bytes;
};
constexpr Type kTypes[] = {{DT_UINT8, "uint8", 1},     {DT_INT8, "int8", 1},       {DT_INT16, "int16", 2},
                           {DT_UINT16, "uint16", 2},   {DT_INT32, "int32", 4},     {DT_UINT32, "uint32", 4},
                           {DT_INT64, "int64", 8},     {DT_UINT64, "uint64", 8},   {DT_FLOAT32, "float32", 4},
                           {DT_FLOAT64, "float64", 8}};

const Type* find_type(int code) {
  for (const Type& t : kTypes)
    if (t.code == code) return &t;
  return nullptr;
}

// The largest value an integer datatype holds (Volume.full_scale); 0 for floats.
double integer_max(int code) {
  switch (code) {
    case DT_UINT8: return 255;
    case DT_INT8: return 127;
    case DT_INT16: return 32767;
    case DT_UINT16: return 65535;
    case DT_INT32: return 2147483647.0;
    case DT_UINT32: return 4294967295.0;
    case DT_INT64: return double(std::numeric_limits<int64_t>::max());
    case DT_UINT64: return double(std::numeric_limits<uint64_t>::max());
    default: return 0;
  }
}


[[noreturn]] void fail(const std::string& path, const std::string& what) { throw FileError(path + ": " + what); }

void quiet_nifti_clib() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

// Missing files and folders are named as such rather than as bad headers.
int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, expected a NIfTI file");
  return int64_t(st.st_size);
}

// The two halves of a file: the header, and the file holding the voxels.
struct Names {
  std::string hdr, img;
  bool pair = false;
};
Names names_of(const std::string& path) {
  Names n{path, path, false};
  const std::string stem = path.substr(0, path.size() - 4);
  const bool upper = path.size() >= 4 && std::isupper(static_cast<unsigned char>(path[path.size() - 1]));
  if (has_extension(path, ".hdr")) {
    n = {path, stem + (upper ? ".IMG" : ".img"), true};
  } else if (has_extension(path, ".img")) {
    n = {stem + (upper ? ".HDR" : ".hdr"), path, true};
  }
  return n;
}

// The raw header, byte-swapped to this machine's order.
struct RawHeader {
  int version = 0;
  bool swapped = false;
  nifti_1_header h1{};
  nifti_2_header h2{};
};

RawHeader read_raw_header(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  unsigned char buf[sizeof(nifti_2_header)] = {};
  const int got = gzread(f, buf, sizeof buf);
  int zerr = Z_OK;
  const std::string zmsg = got < 0 ? gzerror(f, &zerr) : "";
  gzclose(f);
  if (got < 0) fail(path, "cannot read the header (" + zmsg + ")");
  if (got < int(sizeof(nifti_1_header)))
    fail(path, "truncated header: " + std::to_string(got) + " bytes, expected at least 348");

  RawHeader r;
  int32_t size = 0;
  std::memcpy(&size, buf, 4);
  int32_t swapped_size = int32_t(__builtin_bswap32(uint32_t(size)));
  if (size == 348 || swapped_size == 348) {
    r.version = 1;
    r.swapped = size != 348;
    std::memcpy(&r.h1, buf, sizeof r.h1);
    if (r.swapped) nifti_swap_as_nifti1(&r.h1);
  } else if (size == 540 || swapped_size == 540) {
    if (got < int(sizeof(nifti_2_header)))
      fail(path, "truncated NIfTI-2 header: " + std::to_string(got) + " bytes, expected 540");
    r.version = 2;
    r.swapped = size != 540;
    std::memcpy(&r.h2, buf, sizeof r.h2);
    if (r.swapped) nifti_swap_as_nifti2(&r.h2);
  } else {
    fail(path, "not a NIfTI file: sizeof_hdr is " + std::to_string(size) +
                   ", expected 348 (NIfTI-1) or 540 (NIfTI-2)");
  }
  return r;
}

std::string printable(const char* s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && s[i]; ++i)
    out += std::isprint(static_cast<unsigned char>(s[i])) ? s[i] : '?';
  return out;
}

// Everything a header must satisfy before a voxel is read; returns the number of
// bytes of voxel data and sets `pair` from the magic.
int64_t validate(const std::string& path, const RawHeader& r, bool& pair, int64_t& vox_offset) {
  int64_t dim[8];
  int datatype;
  if (r.version == 1) {
    const char* m = r.h1.magic;
    if (std::memcmp(m, "n+1", 4) != 0 && std::memcmp(m, "ni1", 4) != 0)
      fail(path, "bad magic '" + printable(m, 4) +
                     "', expected 'n+1' or 'ni1' (Analyze 7.5 headers are not supported)");
    pair = m[1] == 'i';
    for (int i = 0; i < 8; ++i) dim[i] = r.h1.dim[i];
    datatype = r.h1.datatype;
    vox_offset = int64_t(r.h1.vox_offset);
    if (!std::isfinite(r.h1.vox_offset) || r.h1.vox_offset < 0)
      fail(path, "vox_offset is " + std::to_string(r.h1.vox_offset) + ", expected >= 0");
  } else {
    const char* m = r.h2.magic;
    if ((std::memcmp(m, "n+2", 4) != 0 && std::memcmp(m, "ni2", 4) != 0) ||
        std::memcmp(m + 4, "\r\n\032\n", 4) != 0)
      fail(path, "bad magic '" + printable(m, 4) + "', expected 'n+2' or 'ni2' with its 4 check bytes");
    pair = m[1] == 'i';
    for (int i = 0; i < 8; ++i) dim[i] = r.h2.dim[i];
    datatype = r.h2.datatype;
    vox_offset = r.h2.vox_offset;
    if (vox_offset < 0) fail(path, "vox_offset is " + std::to_string(vox_offset) + ", expected >= 0");
  }
  if (!pair && vox_offset < (r.version == 1 ? 352 : 544))
    fail(path, "vox_offset is " + std::to_string(vox_offset) + ", expected at least " +
                   (r.version == 1 ? "352" : "544") + " in a single-file NIfTI");
  if (dim[0] < 1 || dim[0] > 7) fail(path, "dim[0] is " + std::to_string(dim[0]) + ", expected 1 to 7");
  for (int i = 1; i <= dim[0]; ++i)
    if (dim[i] < 1) fail(path, "dim[" + std::to_string(i) + "] is " + std::to_string(dim[i]) + ", expected >= 1");
  for (int i = 5; i <= dim[0]; ++i)
    if (dim[i] > 1)
      fail(path, "dim[" + std::to_string(i) + "] is " + std::to_string(dim[i]) +
                     ": 5D and higher files are not supported (expected x, y, z and channels)");
  const Type* t = find_type(datatype);
  if (!t) {
    const char* name = nifti_datatype_string(datatype);
    fail(path, "datatype " + std::to_string(datatype) + " (" + (name ? name : "?") +
                   ") is not supported, expected an integer type or float32/float64");
  }
  int64_t count = 1;
  for (int i = 1; i <= dim[0] && i <= 4; ++i) {
    if (dim[i] > kMaxBytes / 4 / count)
      fail(path, "dimensions " + std::to_string(dim[1]) + " x ... (dim[" + std::to_string(i) + "] = " +
                     std::to_string(dim[i]) + ") exceed the limit of " + std::to_string(kMaxBytes >> 30) +
                     " GiB of float voxels");
    count *= dim[i];
  }
  return count * t->bytes;
}

template <typename T>
void convert(const void* src, int64_t n, double slope, double inter, float* out) {
  const T* p = static_cast<const T*>(src);
  if (slope == 0) {
    for (int64_t i = 0; i < n; ++i) out[i] = float(p[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = float(double(p[i]) * slope + inter);
  }
}

void to_float(const nifti_image* nim, float* out, double slope, double inter) {
  const int64_t n = nim->nvox;
  switch (nim->datatype) {
    case DT_UINT8: return convert<uint8_t>(nim->data, n, slope, inter, out);
    case DT_INT8: return convert<int8_t>(nim->data, n, slope, inter, out);
    case DT_INT16: return convert<int16_t>(nim->data, n, slope, inter, out);
    case DT_UINT16: return convert<uint16_t>(nim->data, n, slope, inter, out);
    case DT_INT32: return convert<int32_t>(nim->data, n, slope, inter, out);
    case DT_UINT32: return convert<uint32_t>(nim->data, n, slope, inter, out);
    case DT_INT64: return convert<int64_t>(nim->data, n, slope, inter, out);
    case DT_UINT64: return convert<uint64_t>(nim->data, n, slope, inter, out);
    case DT_FLOAT32: return convert<float>(nim->data, n, slope, inter, out);
    case DT_FLOAT64: return convert<double>(nim->data, n, slope, inter, out);
  }
}

std::array<double, 16> to_array(const nifti_dmat44& m) {
  std::array<double, 16> a{};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) a[i * 4 + j] = m.m[i][j];
  return a;
}
nifti_dmat44 to_dmat(const std::array<double, 16>& a) {
  nifti_dmat44 m{};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) m.m[i][j] = a[i * 4 + j];
  return m;
}

std::shared_ptr<NiftiHeader> header_of(const nifti_image* nim, int version) {
  auto h = std::make_shared<NiftiHeader>();
  h->version = version;
  h->big_endian = nim->byteorder == 2;  // MSB_FIRST, which nifti2_io.h does not export
  h->datatype = nim->datatype;
  for (int i = 0; i < 8; ++i) {
    h->dim[i] = nim->dim[i];
    h->pixdim[i] = nim->pixdim[i];
  }
  h->scl_slope = nim->scl_slope;
  h->scl_inter = nim->scl_inter;
  h->cal_min = nim->cal_min;
  h->cal_max = nim->cal_max;
  h->qform_code = nim->qform_code;
  h->sform_code = nim->sform_code;
  h->quatern_b = nim->quatern_b;
  h->quatern_c = nim->quatern_c;
  h->quatern_d = nim->quatern_d;
  h->qoffset_x = nim->qoffset_x;
  h->qoffset_y = nim->qoffset_y;
  h->qoffset_z = nim->qoffset_z;
  h->qfac = nim->qfac < 0 ? -1 : 1;  // nifti_clib leaves 0 when there is no qform
  h->qform = to_array(nim->qto_xyz);
  h->sform = to_array(nim->sto_xyz);
  h->xyz_units = nim->xyz_units;
  h->time_units = nim->time_units;
  h->intent_code = nim->intent_code;
  h->intent_p1 = nim->intent_p1;
  h->intent_p2 = nim->intent_p2;
  h->intent_p3 = nim->intent_p3;
  h->intent_name = printable(nim->intent_name, sizeof nim->intent_name);
  h->descrip = printable(nim->descrip, sizeof nim->descrip);
  h->aux_file = printable(nim->aux_file, sizeof nim->aux_file);
  h->freq_dim = nim->freq_dim;
  h->phase_dim = nim->phase_dim;
  h->slice_dim = nim->slice_dim;
  h->slice_code = nim->slice_code;
  h->slice_start = nim->slice_start;
  h->slice_end = nim->slice_end;
  h->slice_duration = nim->slice_duration;
  h->toffset = nim->toffset;
  return h;
}

// The voxels are read here rather than by nifti_image_load, which replaces NaN
// and Inf by 0: a reader must show a file's values as they are. The buffer grows
// with what actually arrives, so a tiny .nii.gz whose header claims gigabytes
// fails at its end instead of allocating them first.
std::vector<char> read_voxels(const std::string& img, int64_t offset, int64_t bytes) {
  gzFile f = gzopen(img.c_str(), "rb");
  if (!f) fail(img, std::string("cannot open: ") + std::strerror(errno));
  gzbuffer(f, 1 << 17);
  std::vector<char> out;
  int64_t done = 0;
  bool ok = gzseek(f, z_off_t(offset), SEEK_SET) == z_off_t(offset);
  while (ok && done < bytes) {
    const int64_t want = std::min<int64_t>(bytes - done, 1 << 24);
    if (int64_t(out.capacity()) < done + want)
      out.reserve(size_t(std::min(bytes, std::max<int64_t>(2 * int64_t(out.capacity()), done + want))));
    out.resize(size_t(done + want));
    const int got = gzread(f, out.data() + done, unsigned(want));
    ok = got > 0;
    if (ok) done += got;
  }
  int zerr = Z_OK;
  const std::string why = ok ? "" : gzerror(f, &zerr);
  gzclose(f);
  if (!ok)
    fail(img, "truncated or corrupt: read " + std::to_string(done) + " of " + std::to_string(bytes) +
                  " bytes of voxels from offset " + std::to_string(offset) +
                  (zerr != Z_OK && zerr != Z_BUF_ERROR ? " (" + why + ")" : ""));
  return out;
}

struct NimFree {
  void operator()(nifti_image* p) const { nifti_image_free(p); }
};
using NimPtr = std::unique_ptr<nifti_image, NimFree>;

}  // namespace

Volume read_nifti(const std::string& path) {
  quiet_nifti_clib();
  const Names n = names_of(path);
  if (n.hdr != path && ::access(n.hdr.c_str(), F_OK) != 0 && ::access(path.c_str(), F_OK) == 0)
    fail(path, "its header file " + n.hdr + " is missing (an .img needs its .hdr)");
  file_size(n.hdr);
  const RawHeader raw = read_raw_header(n.hdr);
  bool pair = false;
  int64_t vox_offset = 0;
  const int64_t bytes = validate(n.hdr, raw, pair, vox_offset);
  const std::string img = !pair ? n.hdr : n.pair ? n.img : n.hdr.substr(0, n.hdr.size() - 4) + ".img";
  if (pair) {
    struct stat st {};
    if (::stat(img.c_str(), &st) != 0)
      fail(n.hdr, "its image file " + img + " is missing (a 'ni1'/'ni2' header needs its .img)");
  }
  if (!has_extension(img, ".gz")) {
    const int64_t have = file_size(img);
    if (have < vox_offset + bytes)
      fail(img, "truncated: the header asks for " + std::to_string(bytes) + " bytes of voxels from offset " +
                    std::to_string(vox_offset) + ", the file has " + std::to_string(have) + " bytes");
  }

  NimPtr nim(nifti_image_read(n.hdr.c_str(), 0));
  if (!nim) fail(n.hdr, "nifti_clib cannot read the header");
  const Type* type = find_type(nim->datatype);
  if (!type || nim->nbyper != type->bytes || int64_t(nim->nvox) * type->bytes != bytes)
    fail(n.hdr, "nifti_clib reads the header differently (" + std::to_string(int64_t(nim->nvox)) +
                    " voxels of datatype " + std::to_string(nim->datatype) + ")");
  std::vector<char> data = read_voxels(img, vox_offset, bytes);
  if (raw.swapped && nim->swapsize > 1) nifti_swap_Nbytes(nim->nvox, nim->swapsize, data.data());
  Volume v;
  v.path = path;
  v.w = nim->nx;
  v.h = nim->ndim >= 2 ? nim->ny : 1;
  v.d = nim->ndim >= 3 ? nim->nz : 1;
  v.c = nim->ndim >= 4 ? nim->nt : 1;
  v.dims = v.d > 1 ? 3 : 2;
  v.datatype = type->name;
  for (int i = 0; i < 3; ++i) {
    const double p = nim->pixdim[i + 1];
    v.spacing[i] = (i < nim->ndim && std::isfinite(p) && p > 0) ? p : 1.0;
  }
  double slope = nim->scl_slope, inter = nim->scl_inter;
  if (!std::isfinite(slope) || slope == 0) slope = 0;  // no scaling (the standard's rule)
  if (!std::isfinite(inter)) inter = 0;
  if (slope == 1 && inter == 0) slope = 0;
  v.full_scale = integer_max(nim->datatype);
  if (slope != 0 && v.full_scale > 0) v.full_scale = v.full_scale * slope + inter;
  v.voxels.resize(size_t(nim->nvox));
  nim->data = data.data();  // borrowed for the conversion, given back before nifti_image_free
  to_float(nim.get(), v.voxels.data(), slope, inter);
  nim->data = nullptr;

  auto h = header_of(nim.get(), raw.version);
  if (h->sform_code > 0) {
    v.affine = h->sform;
  } else if (h->qform_code > 0) {
    v.affine = h->qform;
  } else {
    v.affine = {v.spacing[0], 0, 0, 0, 0, v.spacing[1], 0, 0, 0, 0, v.spacing[2], 0, 0, 0, 0, 1};
  }
  v.nifti = std::move(h);
  return v;
}

namespace {

template <typename T>
void store(const Volume& v, void* dst, const std::string& path) {
  T* out = static_cast<T*>(dst);
  const size_t n = v.voxels.size();
  for (size_t i = 0; i < n; ++i) {
    const double x = v.voxels[i];
    if constexpr (std::is_floating_point_v<T>) {
      out[i] = T(x);
    } else {
      if (std::isnan(x))
        throw std::invalid_argument("write_nifti " + path + ": voxel " + std::to_string(i) +
                                    " is NaN, which an integer datatype cannot hold");
      constexpr double lo = double(std::numeric_limits<T>::lowest());
      constexpr double hi = double(std::numeric_limits<T>::max());
      const double r = std::nearbyint(x);
      out[i] = r <= lo ? std::numeric_limits<T>::lowest() : r >= hi ? std::numeric_limits<T>::max() : T(r);
    }
  }
}

void fill(const Volume& v, nifti_image* nim, const std::string& path) {
  switch (nim->datatype) {
    case DT_UINT8: return store<uint8_t>(v, nim->data, path);
    case DT_INT8: return store<int8_t>(v, nim->data, path);
    case DT_INT16: return store<int16_t>(v, nim->data, path);
    case DT_UINT16: return store<uint16_t>(v, nim->data, path);
    case DT_INT32: return store<int32_t>(v, nim->data, path);
    case DT_UINT32: return store<uint32_t>(v, nim->data, path);
    case DT_INT64: return store<int64_t>(v, nim->data, path);
    case DT_UINT64: return store<uint64_t>(v, nim->data, path);
    case DT_FLOAT32: return store<float>(v, nim->data, path);
    case DT_FLOAT64: return store<double>(v, nim->data, path);
  }
}

void copy_text(char* dst, size_t size, const std::string& s) {
  std::memset(dst, 0, size);
  std::memcpy(dst, s.data(), std::min(size - 1, s.size()));
}

// The header and voxels are written here: nifti_image_write reports no error at
// all, and in nifti_clib 3.0.1 it writes a NIfTI-2 .nii as its data alone. zlib's
// "T" mode writes the same stream uncompressed for .nii.
void write_file(const std::string& tmp, const std::string& path, bool gz, const void* header, size_t hsize,
                const void* data, int64_t bytes) {
  gzFile f = gzopen(tmp.c_str(), gz ? "wb6" : "wbT");
  if (!f) fail(path, std::string("cannot write: ") + std::strerror(errno));
  const char extender[4] = {0, 0, 0, 0};  // no extensions follow the header
  bool ok = gzwrite(f, header, unsigned(hsize)) == int(hsize) && gzwrite(f, extender, 4) == 4;
  for (int64_t done = 0; ok && done < bytes;) {
    const unsigned n = unsigned(std::min<int64_t>(bytes - done, 1 << 30));
    ok = gzwrite(f, static_cast<const char*>(data) + done, n) == int(n);
    done += n;
  }
  int zerr = Z_OK;
  const std::string why = ok ? "" : gzerror(f, &zerr);
  const int closed = gzclose(f);
  if (!ok || closed != Z_OK)
    fail(path, "write failed (" + (why.empty() ? std::string(std::strerror(errno)) : why) +
                   "): disk full or not writable?");
}

}  // namespace

void write_nifti(const std::string& path, const Volume& v, const std::string& datatype) {
  quiet_nifti_clib();
  const Type* t = nullptr;
  for (const Type& k : kTypes)
    if (datatype == k.name) t = &k;
  if (!t) throw std::invalid_argument("write_nifti " + path + ": datatype '" + datatype + "' is not one of uint8, "
                                      "int8, int16, uint16, int32, uint32, int64, uint64, float32, float64");
  const bool gz = has_extension(path, ".nii.gz");
  if (!gz && !has_extension(path, ".nii"))
    throw std::invalid_argument("write_nifti " + path + ": expected a .nii or .nii.gz name");
  if (int64_t(v.voxels.size()) != v.count() || v.count() <= 0)
    throw std::invalid_argument("write_nifti " + path + ": volume holds " + std::to_string(v.voxels.size()) +
                                " voxels, its shape says " + std::to_string(v.count()));
  const NiftiHeader* h = v.nifti.get();
  if (h) {
    const int64_t hd = h->dim[0] >= 3 ? h->dim[3] : 1, hh = h->dim[0] >= 2 ? h->dim[2] : 1;
    if (h->dim[1] != v.w || hh != v.h || hd != v.d)
      throw std::invalid_argument("write_nifti " + path + ": volume grid " + std::to_string(v.w) + "x" +
                                  std::to_string(v.h) + "x" + std::to_string(v.d) +
                                  " is not its NIfTI header's; its geometry would be wrong");
  }

  int64_t dims[8] = {0, v.w, v.h, v.d, v.c, 1, 1, 1};
  dims[0] = v.c > 1 ? 4 : (v.d > 1 || v.dims == 3 || (h && h->dim[0] >= 3)) ? 3 : 2;
  NimPtr nim(nifti_make_new_nim(dims, t->code, 1));
  if (!nim || !nim->data) fail(path, "cannot allocate the image to write");
  fill(v, nim.get(), path);

  nim->scl_slope = 0;
  nim->scl_inter = 0;
  nim->cal_min = nim->cal_max = 0;
  if (h) {
    for (int i = 1; i <= 3; ++i) nim->pixdim[i] = h->pixdim[i];
    if (v.c > 1) nim->pixdim[4] = h->dim[0] >= 4 ? h->pixdim[4] : 1;
    nim->qform_code = h->qform_code;
    nim->sform_code = h->sform_code;
    nim->quatern_b = h->quatern_b;
    nim->quatern_c = h->quatern_c;
    nim->quatern_d = h->quatern_d;
    nim->qoffset_x = h->qoffset_x;
    nim->qoffset_y = h->qoffset_y;
    nim->qoffset_z = h->qoffset_z;
    nim->qfac = h->qfac;
    nim->qto_xyz = to_dmat(h->qform);
    nim->sto_xyz = to_dmat(h->sform);
    nim->xyz_units = h->xyz_units;
    nim->time_units = h->time_units;
    nim->intent_code = h->intent_code;
    nim->intent_p1 = h->intent_p1;
    nim->intent_p2 = h->intent_p2;
    nim->intent_p3 = h->intent_p3;
    copy_text(nim->intent_name, sizeof nim->intent_name, h->intent_name);
    copy_text(nim->descrip, sizeof nim->descrip, h->descrip);
    copy_text(nim->aux_file, sizeof nim->aux_file, h->aux_file);
    nim->freq_dim = h->freq_dim;
    nim->phase_dim = h->phase_dim;
    nim->slice_dim = h->slice_dim;
    nim->slice_code = h->slice_code;
    nim->slice_start = h->slice_start;
    nim->slice_end = h->slice_end;
    nim->slice_duration = h->slice_duration;
    nim->toffset = h->toffset;
  } else {
    for (int i = 1; i <= 3; ++i) nim->pixdim[i] = v.spacing[i - 1];
    const nifti_dmat44 a = to_dmat(v.affine);
    double dx, dy, dz;
    nifti_dmat44_to_quatern(a, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                            &nim->qoffset_y, &nim->qoffset_z, &dx, &dy, &dz, &nim->qfac);
    nim->qto_xyz = a;
    nim->sto_xyz = a;
    nim->qform_code = nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->xyz_units = NIFTI_UNITS_MM;
  }
  nim->pixdim[0] = nim->qfac;
  nim->dx = nim->pixdim[1];
  nim->dy = nim->pixdim[2];
  nim->dz = nim->pixdim[3];
  const int version = h ? h->version : 1;
  nim->nifti_type = version == 2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;

  TempFile tmp(path, gz ? ".nii.gz" : ".nii");
  const int64_t bytes = int64_t(nim->nvox) * t->bytes;
  if (version == 2) {
    nifti_2_header hdr{};
    if (nifti_convert_nim2n2hdr(nim.get(), &hdr) != 0) fail(path, "nifti_clib cannot make a NIfTI-2 header");
    std::memcpy(hdr.magic, "n+2\0\r\n\032\n", 8);
    hdr.vox_offset = 544;
    write_file(tmp.name(), path, gz, &hdr, sizeof hdr, nim->data, bytes);
  } else {
    nifti_1_header hdr{};
    if (nifti_convert_nim2n1hdr(nim.get(), &hdr) != 0) fail(path, "nifti_clib cannot make a NIfTI-1 header");
    std::memcpy(hdr.magic, "n+1", 4);
    hdr.vox_offset = 352;
    write_file(tmp.name(), path, gz, &hdr, sizeof hdr, nim->data, bytes);
  }
  tmp.commit();
}

std::string nifti_orientation(const std::array<double, 16>& affine) {
  int code[3];
  nifti_dmat44_to_orientation(to_dmat(affine), &code[0], &code[1], &code[2]);
  std::string s;
  for (int c : code) {
    switch (c) {
      case NIFTI_L2R: s += 'R'; break;
      case NIFTI_R2L: s += 'L'; break;
      case NIFTI_P2A: s += 'A'; break;
      case NIFTI_A2P: s += 'P'; break;
      case NIFTI_I2S: s += 'S'; break;
      case NIFTI_S2I: s += 'I'; break;
      default: s += '?';
    }
  }
  return s;
}

}  // namespace unet
