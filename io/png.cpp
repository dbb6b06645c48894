// PNG reading and writing through libpng's classic API (the simplified png_image
// API converts samples to 8-bit sRGB or linear light; we need the raw values).
//
// libpng reports errors by longjmp. Every libpng call that may fail runs inside a
// small function that holds setjmp and no C++ object with a destructor, so a
// longjmp never skips one; the structs, the FILE and the buffers belong to the
// caller and are released by RAII whether the call succeeded or not.
#include "io/png.h"

#include <png.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "io/atomic_file.h"

namespace unet {
namespace {

// Float voxels we are willing to allocate: 16 GiB.
constexpr int64_t kMaxBytes = int64_t(1) << 34;

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw FileError(path + ": " + what); }

struct ErrorSink {
  char message[256];
  char warning[256];  // libpng often explains an error in the warning just before it

  std::string what() const {
    std::string s = message;
    if (warning[0] && s.find(warning) == std::string::npos) s += std::string(" (") + warning + ")";
    return s;
  }
};

[[noreturn]] void on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof sink->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}
// Warnings (a bad ancillary chunk, say) are not failures; the last is kept to
// explain an error that follows it.
void on_warning(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->warning, sizeof sink->warning, "%s", msg ? msg : "");
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

struct ReadHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadHandles() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};
struct WriteHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~WriteHandles() { png_destroy_write_struct(&png, info ? &info : nullptr); }
};

// What the header says, after the transforms we ask for.
struct Layout {
  png_uint_32 width, height;
  int channels, bit_depth, original_depth, color_type;
  size_t rowbytes;
};

bool read_header(png_structp png, png_infop info, Layout* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  out->color_type = png_get_color_type(png, info);
  out->original_depth = png_get_bit_depth(png, info);
  if (out->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_palette_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  } else if (out->original_depth < 8) {
    png_set_packing(png);  // one byte per sample, values unscaled (0..2^bits-1)
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->channels = png_get_channels(png, info);
  out->bit_depth = png_get_bit_depth(png, info);
  out->rowbytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);  // reaches IEND, so a file cut after its pixels is refused too
  return true;
}

bool write_all(png_structp png, png_infop info, FILE* f, const Layout* l, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_set_IHDR(png, info, l->width, l->height, l->bit_depth, l->color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

Volume read_png(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, expected a PNG file");
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));

  png_byte sig[8];
  const size_t got = std::fread(sig, 1, sizeof sig, f.get());
  if (got == 0) fail(path, "empty file, expected a PNG");
  if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0)
    fail(path, "bad signature: not a PNG file (expected the 8 bytes 89 50 4E 47 0D 0A 1A 0A)");

  ErrorSink sink{};
  ReadHandles h;
  h.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (!h.png) fail(path, "libpng cannot start (out of memory)");
  h.info = png_create_info_struct(h.png);
  if (!h.info) fail(path, "libpng cannot start (out of memory)");
  png_init_io(h.png, f.get());
  png_set_sig_bytes(h.png, sizeof sig);
  png_set_user_limits(h.png, 1u << 24, 1u << 24);

  Layout l{};
  if (!read_header(h.png, h.info, &l)) fail(path, "corrupt PNG header: " + sink.what());
  if (l.width == 0 || l.height == 0) fail(path, "width or height is zero");
  const int64_t count = int64_t(l.width) * l.height * l.channels;
  if (count > kMaxBytes / 4)
    fail(path, std::to_string(l.width) + " x " + std::to_string(l.height) + " x " + std::to_string(l.channels) +
                   " samples exceed the limit of " + std::to_string(kMaxBytes >> 30) + " GiB of float voxels");

  std::vector<png_byte> pixels(l.rowbytes * l.height);
  std::vector<png_bytep> rows(l.height);
  for (png_uint_32 y = 0; y < l.height; ++y) rows[y] = pixels.data() + y * l.rowbytes;
  if (!read_rows(h.png, rows.data())) fail(path, "corrupt PNG data: " + sink.what());

  Volume v;
  v.path = path;
  v.dims = 2;
  v.c = l.channels;
  v.d = 1;
  v.h = l.height;
  v.w = l.width;
  const int depth = l.color_type == PNG_COLOR_TYPE_PALETTE ? 8 : l.original_depth;
  v.full_scale = double((1u << depth) - 1);
  v.datatype = "uint" + std::to_string(depth);
  v.voxels.resize(size_t(count));
  const int64_t plane = int64_t(l.width) * l.height;
  for (png_uint_32 y = 0; y < l.height; ++y) {
    const png_byte* row = rows[y];
    for (png_uint_32 x = 0; x < l.width; ++x)
      for (int c = 0; c < l.channels; ++c) {
        const size_t i = size_t(x) * l.channels + c;
        const float s = l.bit_depth == 16 ? float((row[2 * i] << 8) | row[2 * i + 1]) : float(row[i]);
        v.voxels[size_t(c * plane + int64_t(y) * l.width + x)] = s;
      }
  }
  return v;
}

void write_png(const std::string& path, const Volume& v, int bit_depth) {
  if (bit_depth != 8 && bit_depth != 16)
    throw std::invalid_argument("write_png " + path + ": bit depth " + std::to_string(bit_depth) +
                                ", expected 8 or 16");
  if (v.d != 1 || v.c < 1 || v.c > 4 || v.w < 1 || v.h < 1 || int64_t(v.voxels.size()) != v.count())
    throw std::invalid_argument("write_png " + path + ": expected one 2D slice of 1 to 4 channels with c*h*w voxels");
  static const int kColor[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                               PNG_COLOR_TYPE_RGB_ALPHA};
  Layout l{};
  l.width = png_uint_32(v.w);
  l.height = png_uint_32(v.h);
  l.channels = int(v.c);
  l.bit_depth = bit_depth;
  l.color_type = kColor[v.c - 1];
  const int bytes = bit_depth / 8;
  const double top = bit_depth == 8 ? 255 : 65535;

  std::vector<png_byte> pixels(size_t(v.count()) * bytes);
  std::vector<png_bytep> rows(l.height);
  const int64_t plane = v.w * v.h;
  for (int64_t y = 0; y < v.h; ++y) {
    png_byte* row = pixels.data() + size_t(y * v.w * v.c * bytes);
    rows[y] = row;
    for (int64_t x = 0; x < v.w; ++x)
      for (int64_t c = 0; c < v.c; ++c) {
        const double s = v.voxels[size_t(c * plane + y * v.w + x)];
        const unsigned q = std::isnan(s) ? 0u : unsigned(std::fmin(std::fmax(std::nearbyint(s), 0.0), top));
        png_byte* p = row + (x * v.c + c) * bytes;
        if (bytes == 2) {
          p[0] = png_byte(q >> 8);
          p[1] = png_byte(q & 255);
        } else {
          p[0] = png_byte(q);
        }
      }
  }

  TempFile tmp(path, ".png");
  {
    FilePtr f(std::fopen(tmp.name().c_str(), "wb"));
    if (!f) fail(path, std::string("cannot write: ") + std::strerror(errno));
    ErrorSink sink{};
    WriteHandles h;
    h.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
    if (!h.png) fail(path, "libpng cannot start (out of memory)");
    h.info = png_create_info_struct(h.png);
    if (!h.info) fail(path, "libpng cannot start (out of memory)");
    if (!write_all(h.png, h.info, f.get(), &l, rows.data())) fail(path, "cannot write: " + sink.what());
    FILE* raw = f.release();
    if (std::fflush(raw) != 0 || std::ferror(raw)) {
      const std::string why = std::strerror(errno);
      std::fclose(raw);
      fail(path, "cannot write: " + why);
    }
    if (std::fclose(raw) != 0) fail(path, std::string("cannot write: ") + std::strerror(errno));
  }
  tmp.commit();
}

}  // namespace unet
