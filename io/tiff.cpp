#include "io/tiff.h"

#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "io/atomic_file.h"
#include "io/file_name.h"

namespace unet {
namespace {

// The largest strip or tile buffer (and libtiff allocation) taken: 1 GiB.
constexpr tmsize_t kMaxBuffer = tmsize_t(1) << 30;

// libtiff's messages for one open file, kept for the FileError (no global handler: thread-safe).
struct Messages {
  std::string last;
};

int keep_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  static_cast<Messages*>(user)->last = std::string(module ? module : "libtiff") + ": " + buf;
  return 1;
}
int drop_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct Closer {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using Tiff = std::unique_ptr<TIFF, Closer>;

Tiff open_tiff(const std::string& path, const char* mode, Messages& m) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, keep_error, &m);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, drop_warning, nullptr);
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, kMaxBuffer);  // a damaged size asks for no more at once
  Tiff t(TIFFOpenExt(path.c_str(), mode, opts));
  TIFFOpenOptionsFree(opts);
  return t;
}

// One page's layout, which every page must share.
struct Layout {
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bits = 8, format = SAMPLEFORMAT_UINT, photometric = PHOTOMETRIC_MINISBLACK,
           planar = PLANARCONFIG_CONTIG;
  bool operator==(const Layout& o) const {
    return w == o.w && h == o.h && spp == o.spp && bits == o.bits && format == o.format &&
           photometric == o.photometric && planar == o.planar;
  }
  std::string str() const {
    return std::to_string(w) + "x" + std::to_string(h) + ", " + std::to_string(spp) + " sample(s) of " +
           std::to_string(bits) + " bits";
  }
};

Layout layout_of(TIFF* t, const std::string& where) {
  Layout l;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &l.w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &l.h);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &l.spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &l.bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &l.format);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &l.planar);
  if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &l.photometric)) l.photometric = l.spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  if (l.w == 0 || l.h == 0) throw FileError(where + ": zero width or height (" + l.str() + ")");
  if (l.spp < 1 || l.spp > 4) throw FileError(where + ": " + std::to_string(l.spp) + " samples per pixel; expected 1 to 4");
  const bool ints = l.format == SAMPLEFORMAT_UINT || l.format == SAMPLEFORMAT_INT;
  const bool ok = (ints && (l.bits == 8 || l.bits == 16 || l.bits == 32 || (l.bits == 1 && l.spp == 1))) ||
                  (l.format == SAMPLEFORMAT_IEEEFP && l.bits == 32);
  if (!ok)
    throw FileError(where + ": samples of " + std::to_string(l.bits) + " bits, format " + std::to_string(l.format) +
                    "; expected 1-bit, 8/16/32-bit integers or 32-bit floats");
  if (l.photometric == PHOTOMETRIC_PALETTE && (l.spp != 1 || (l.bits != 8 && l.bits != 16 && l.bits != 1)))
    throw FileError(where + ": a palette image must have one sample per pixel");
  if (l.photometric != PHOTOMETRIC_MINISBLACK && l.photometric != PHOTOMETRIC_MINISWHITE &&
      l.photometric != PHOTOMETRIC_RGB && l.photometric != PHOTOMETRIC_PALETTE)
    throw FileError(where + ": photometric interpretation " + std::to_string(l.photometric) +
                    " (CMYK, YCbCr, ...); expected grayscale, RGB or palette");
  return l;
}

// Sample i of a row of `bits`-bit samples, as float.
float sample(const uint8_t* row, int64_t i, const Layout& l) {
  switch (l.bits) {
    case 1: return float((row[i >> 3] >> (7 - (i & 7))) & 1);
    case 8: return l.format == SAMPLEFORMAT_INT ? float(int8_t(row[i])) : float(row[i]);
    case 16: {
      uint16_t v;
      std::memcpy(&v, row + 2 * i, 2);
      return l.format == SAMPLEFORMAT_INT ? float(int16_t(v)) : float(v);
    }
    default: {
      uint32_t v;
      std::memcpy(&v, row + 4 * i, 4);
      if (l.format == SAMPLEFORMAT_IEEEFP) {
        float f;
        std::memcpy(&f, &v, 4);
        return f;
      }
      return l.format == SAMPLEFORMAT_INT ? float(int32_t(v)) : float(v);
    }
  }
}

// The decoded page as rows of bytes: planes (1, or spp when separate) x h rows x row_bytes.
std::vector<uint8_t> decode_page(TIFF* t, const Layout& l, const std::string& where, const Messages& m) {
  const int64_t planes = l.planar == PLANARCONFIG_SEPARATE ? l.spp : 1;
  const int64_t per_pixel = l.planar == PLANARCONFIG_SEPARATE ? 1 : l.spp;
  const int64_t row_bytes = (int64_t(l.w) * per_pixel * l.bits + 7) / 8;
  std::vector<uint8_t> out(static_cast<size_t>(planes * l.h * row_bytes));
  auto failed = [&](const std::string& what) {
    return FileError(where + ": " + what + (m.last.empty() ? " (truncated or damaged?)" : " (" + m.last + ")"));
  };
  if (TIFFIsTiled(t)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0 || (int64_t(tw) * per_pixel * l.bits) % 8) throw failed("bad tile size");
    const tmsize_t tile_size = TIFFTileSize(t);
    if (tile_size <= 0 || tile_size > kMaxBuffer) throw failed("bad tile size " + std::to_string(tw) + "x" + std::to_string(th));
    std::vector<uint8_t> tile(static_cast<size_t>(tile_size));
    const int64_t tile_row = int64_t(tw) * per_pixel * l.bits / 8;
    if (tile.empty() || int64_t(tile.size()) < tile_row * th) throw failed("bad tile size");
    for (int64_t p = 0; p < planes; ++p)
      for (uint32_t y = 0; y < l.h; y += th)
        for (uint32_t x = 0; x < l.w; x += tw) {
          if (TIFFReadTile(t, tile.data(), x, y, 0, uint16_t(p)) < 0)
            throw failed("cannot decode the tile at " + std::to_string(x) + ", " + std::to_string(y));
          const int64_t x0 = int64_t(x) * per_pixel * l.bits / 8, n = std::min(tile_row, row_bytes - x0);
          for (uint32_t r = 0; r < th && y + r < l.h; ++r)
            std::memcpy(&out[size_t((p * l.h + y + r) * row_bytes + x0)], &tile[size_t(r * tile_row)], size_t(n));
        }
  } else {
    uint32_t rps = l.h;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rps);
    rps = std::min(std::max<uint32_t>(rps, 1), l.h);
    const int64_t strips = (l.h + rps - 1) / rps;
    const tmsize_t strip_size = TIFFStripSize(t);
    if (strip_size <= 0 || strip_size > kMaxBuffer) throw failed("bad strip size");
    std::vector<uint8_t> strip(static_cast<size_t>(strip_size));
    if (int64_t(strip.size()) < row_bytes * rps) strip.resize(size_t(row_bytes * rps));
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t s = 0; s < strips; ++s) {
        const int64_t rows = std::min<int64_t>(rps, l.h - s * rps);
        if (TIFFReadEncodedStrip(t, uint32_t(p * strips + s), strip.data(), tmsize_t(rows * row_bytes)) < 0)
          throw failed("cannot decode strip " + std::to_string(s));
        std::memcpy(&out[size_t((p * l.h + s * rps) * row_bytes)], strip.data(), size_t(rows * row_bytes));
      }
  }
  return out;
}

// ImageJ's description: "key=value" lines.
std::string imagej_field(const std::string& description, const std::string& key) {
  std::istringstream in(description);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

double mm_per(const std::string& unit) {
  if (unit == "micron" || unit == "um" || unit == "\\u00B5m" || unit == "µm") return 1e-3;
  if (unit == "nm") return 1e-6;
  if (unit == "mm") return 1;
  if (unit == "cm") return 10;
  if (unit == "m") return 1e3;
  if (unit == "inch") return 25.4;
  return 0;  // pixel, or unknown: no physical size
}

std::array<double, 3> spacing_of(TIFF* t) {
  std::array<double, 3> s{1, 1, 1};
  float xres = 0, yres = 0;
  uint16_t unit = RESUNIT_NONE;
  TIFFGetFieldDefaulted(t, TIFFTAG_RESOLUTIONUNIT, &unit);
  const bool have = TIFFGetField(t, TIFFTAG_XRESOLUTION, &xres) && TIFFGetField(t, TIFFTAG_YRESOLUTION, &yres) &&
                    xres > 0 && yres > 0 && std::isfinite(xres) && std::isfinite(yres);
  char* text = nullptr;
  const std::string description = TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &text) && text ? text : "";
  const double imagej = description.rfind("ImageJ=", 0) == 0 ? mm_per(imagej_field(description, "unit")) : 0;
  const double per = unit == RESUNIT_INCH ? 25.4 : unit == RESUNIT_CENTIMETER ? 10 : imagej;
  if (have && per > 0) s[0] = per / xres, s[1] = per / yres;
  const double z = imagej > 0 ? std::atof(imagej_field(description, "spacing").c_str()) : 0;
  if (z > 0 && std::isfinite(z)) s[2] = z * imagej;
  return s;
}

}  // namespace

bool is_tiff_name(const std::string& path) { return has_extension(path, ".tif") || has_extension(path, ".tiff"); }

Volume read_tiff(const std::string& path) {
  Messages m;
  Tiff t = open_tiff(path, "r", m);
  if (!t) throw FileError(path + ": not a readable TIFF file (" + (m.last.empty() ? "cannot open" : m.last) + ")");
  const Layout first = layout_of(t.get(), path + " page 1");
  // Pages before pixels: their count and that they agree, before any allocation.
  int64_t pages = 1;
  while (!TIFFLastDirectory(t.get())) {  // a page that should follow and cannot be read: damaged, not the end
    if (!TIFFReadDirectory(t.get()))
      throw FileError(path + ": page " + std::to_string(pages + 1) + " cannot be read (" +
                      (m.last.empty() ? "truncated?" : m.last) + ")");
    const Layout l = layout_of(t.get(), path + " page " + std::to_string(pages + 1));
    if (!(l == first))
      throw FileError(path + ": page " + std::to_string(pages + 1) + " is " + l.str() + ", page 1 " + first.str() +
                      "; a stack's pages must agree");
    ++pages;
  }
  const bool palette = first.photometric == PHOTOMETRIC_PALETTE;
  const int64_t c = palette ? 3 : first.spp;
  // No compression TIFF has expands a byte into more than about 1,300 (LZW on
  // constant data; Deflate 1,032, PackBits 64), bilevel CCITT aside (a row like
  // the last in one bit): sizes beyond that are damage, refused before anything
  // is allocated for them.
  std::error_code ec;
  const int64_t file_bytes = int64_t(std::filesystem::file_size(path, ec));
  const double samples = double(c) * double(pages) * double(first.w) * double(first.h);  // no overflow
  const int64_t per_byte = first.bits == 1 ? 8 * 65536 : 2048 * 8 / first.bits;
  const int64_t most = std::min<int64_t>(int64_t(1) << 31, (ec ? 0 : file_bytes) * per_byte);
  if (samples > double(most))
    throw FileError(path + ": " + std::to_string(pages) + " page(s) of " + first.str() + " are " +
                    std::to_string(int64_t(samples)) + " samples, more than a file of " + std::to_string(file_bytes) +
                    " bytes can hold (at most " + std::to_string(most) + "): damaged sizes");
  Volume v;
  v.path = path;
  v.w = first.w, v.h = first.h, v.d = pages, v.c = c, v.dims = pages > 1 ? 3 : 2;
  v.voxels.resize(static_cast<size_t>(v.count()));
  const bool ints = first.format != SAMPLEFORMAT_IEEEFP;
  v.datatype = palette ? "uint8"
               : !ints ? "float32"
                       : std::string(first.format == SAMPLEFORMAT_INT ? "int" : "uint") + std::to_string(first.bits);
  v.full_scale = palette ? 255 : (ints && first.format == SAMPLEFORMAT_UINT ? std::ldexp(1.0, first.bits) - 1 : 0);
  uint16_t *red = nullptr, *green = nullptr, *blue = nullptr;
  const int64_t plane = v.w * v.h;
  for (int64_t z = 0; z < pages; ++z) {
    if (!TIFFSetDirectory(t.get(), tdir_t(z))) throw FileError(path + ": cannot go to page " + std::to_string(z + 1));
    if (z == 0) v.spacing = spacing_of(t.get());
    if (palette && !TIFFGetField(t.get(), TIFFTAG_COLORMAP, &red, &green, &blue))
      throw FileError(path + ": a palette image without a colour map");
    const std::vector<uint8_t> bytes = decode_page(t.get(), first, path + " page " + std::to_string(z + 1), m);
    const bool separate = first.planar == PLANARCONFIG_SEPARATE;
    const int64_t per_pixel = separate ? 1 : first.spp, row_bytes = (int64_t(first.w) * per_pixel * first.bits + 7) / 8;
    const float invert = first.photometric == PHOTOMETRIC_MINISWHITE ? float(v.full_scale) : -1.f;
    for (int64_t s = 0; s < first.spp; ++s)
      for (int64_t y = 0; y < v.h; ++y) {
        const uint8_t* row = &bytes[size_t(((separate ? s : 0) * v.h + y) * row_bytes)];
        for (int64_t x = 0; x < v.w; ++x) {
          float value = sample(row, separate ? x : x * first.spp + s, first);
          if (palette) {
            const int64_t i = std::clamp<int64_t>(int64_t(value), 0, (int64_t(1) << first.bits) - 1);  // signed: below 0
            for (int k = 0; k < 3; ++k)
              v.voxels[size_t((k * v.d + z) * plane + y * v.w + x)] = float((k == 0 ? red : k == 1 ? green : blue)[i] >> 8);
            continue;
          }
          if (invert >= 0) value = invert - value;
          v.voxels[size_t((s * v.d + z) * plane + y * v.w + x)] = value;
        }
      }
  }
  v.affine = {v.spacing[0], 0, 0, 0, 0, v.spacing[1], 0, 0, 0, 0, v.spacing[2], 0, 0, 0, 0, 1};
  return v;
}

void write_tiff(const std::string& path, const Volume& v, const std::string& datatype) {
  const int bits = datatype == "uint8" ? 8 : datatype == "uint16" ? 16 : datatype == "float32" ? 32 : 0;
  if (bits == 0) throw std::invalid_argument("write_tiff: datatype " + datatype + "; expected uint8, uint16 or float32");
  if (v.c < 1 || v.c > 4) throw std::invalid_argument("write_tiff: " + std::to_string(v.c) + " channels; expected 1 to 4");
  TempFile tmp(path, ".tif");
  {
    Messages m;
    Tiff t = open_tiff(tmp.name(), v.count() * (bits / 8) > (int64_t(1) << 31) ? "w8" : "w", m);
    if (!t) throw FileError(path + ": cannot write (" + m.last + ")");
    const int64_t plane = v.w * v.h;
    std::vector<uint8_t> row(size_t(v.w * v.c * (bits / 8)));
    std::ostringstream description;  // ImageJ's, so that Fiji opens the stack calibrated
    description << "ImageJ=1.11a\nimages=" << v.d << "\n" << (v.d > 1 ? "slices=" + std::to_string(v.d) + "\n" : "")
                << "unit=mm\nspacing=" << v.spacing[2] << "\n";
    for (int64_t z = 0; z < v.d; ++z) {
      TIFFSetField(t.get(), TIFFTAG_IMAGEWIDTH, uint32_t(v.w));
      TIFFSetField(t.get(), TIFFTAG_IMAGELENGTH, uint32_t(v.h));
      TIFFSetField(t.get(), TIFFTAG_SAMPLESPERPIXEL, uint16_t(v.c));
      TIFFSetField(t.get(), TIFFTAG_BITSPERSAMPLE, uint16_t(bits));
      TIFFSetField(t.get(), TIFFTAG_SAMPLEFORMAT, uint16_t(bits == 32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
      TIFFSetField(t.get(), TIFFTAG_PHOTOMETRIC, uint16_t(v.c >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
      if (v.c == 2 || v.c == 4) {
        const uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t.get(), TIFFTAG_EXTRASAMPLES, uint16_t(1), &extra);
      }
      TIFFSetField(t.get(), TIFFTAG_PLANARCONFIG, uint16_t(PLANARCONFIG_CONTIG));
      TIFFSetField(t.get(), TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_ADOBE_DEFLATE));
      TIFFSetField(t.get(), TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t.get(), 0));
      TIFFSetField(t.get(), TIFFTAG_RESOLUTIONUNIT, uint16_t(RESUNIT_NONE));
      TIFFSetField(t.get(), TIFFTAG_XRESOLUTION, float(1 / v.spacing[0]));
      TIFFSetField(t.get(), TIFFTAG_YRESOLUTION, float(1 / v.spacing[1]));
      if (z == 0) TIFFSetField(t.get(), TIFFTAG_IMAGEDESCRIPTION, description.str().c_str());
      if (v.d > 1) {
        TIFFSetField(t.get(), TIFFTAG_SUBFILETYPE, uint32_t(FILETYPE_PAGE));
        TIFFSetField(t.get(), TIFFTAG_PAGENUMBER, uint16_t(z), uint16_t(v.d));
      }
      for (int64_t y = 0; y < v.h; ++y) {
        for (int64_t x = 0; x < v.w; ++x)
          for (int64_t s = 0; s < v.c; ++s) {
            const float f = v.voxels[size_t((s * v.d + z) * plane + y * v.w + x)];
            const size_t at = size_t((x * v.c + s) * (bits / 8));
            if (bits == 32) {
              std::memcpy(&row[at], &f, 4);
            } else {
              const double top = bits == 8 ? 255 : 65535;
              const double r = std::isnan(f) ? 0 : std::min(std::max(std::nearbyint(double(f)), 0.0), top);
              if (bits == 8) row[at] = uint8_t(r);
              else {
                const uint16_t u = uint16_t(r);
                std::memcpy(&row[at], &u, 2);
              }
            }
          }
        if (TIFFWriteScanline(t.get(), row.data(), uint32_t(y), 0) < 0)
          throw FileError(path + ": cannot write page " + std::to_string(z + 1) + " (" + m.last + "); " + path +
                          " is unchanged");
      }
      if (!TIFFWriteDirectory(t.get()))
        throw FileError(path + ": cannot write page " + std::to_string(z + 1) + " (" + m.last + ")");
    }
  }
  tmp.commit();
}

}  // namespace unet
