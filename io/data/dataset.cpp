// Dataset layouts, splits and case loading.
#include "io/data/dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/file_name.h"
#include "io/image_file.h"
#include "io/nifti.h"
#include "io/png.h"

namespace unet {
namespace fs = std::filesystem;
namespace {

// What is at a path a manifest or the user gave, without throwing on a name the
// system refuses (too long, a loop of links): such a path is simply not there,
// and the caller's message names it.
bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}
bool is_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}


// The file name without its image extension (".nii.gz" counts as one).
// Numbers inside names compare as numbers: "2" < "10".
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j || (a.size() - i == b.size() - j && a < b);
}

void sort_cases(std::vector<Case>& cases) {
  std::sort(cases.begin(), cases.end(), [](const Case& x, const Case& y) { return natural_less(x.id, y.id); });
}

// Image files directly in `dir`, by file name.
std::map<std::string, std::string> image_files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path().string())) out[e.path().filename().string()] = e.path().string();
  // An Analyze-style pair is one image, named by its .hdr.
  for (auto it = out.begin(); it != out.end();) {
    const std::string& name = it->first;
    const bool img = has_extension(name, ".img");
    const std::string stem_name = name.substr(0, name.size() - 4);
    if (img && (out.count(stem_name + ".hdr") || out.count(stem_name + ".HDR"))) it = out.erase(it);
    else ++it;
  }
  return out;
}

void require_dir(const fs::path& dir, const std::string& what) {
  if (!is_folder(dir)) throw FileError(dir.string() + ": no such folder; " + what);
}

void require_cases(const Dataset& ds, const std::string& what) {
  if (ds.cases.empty()) throw FileError(ds.source + ": no cases found; " + what);
}

// One CSV record, with RFC 4180 quoting.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (ch == '"') quoted = false;
      else out.back() += ch;
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      out.emplace_back();
    } else if (ch != '\r') {
      out.back() += ch;
    }
  }
  for (auto& f : out) {  // surrounding blanks are layout, not part of a path
    f.erase(0, std::min(f.find_first_not_of(" \t"), f.size()));
    f.erase(f.find_last_not_of(" \t") + 1);
  }
  return out;
}

std::vector<Case> pick(const Dataset& ds, const std::vector<size_t>& idx) {
  std::vector<Case> out;
  for (size_t i : idx) out.push_back(ds.cases[i]);
  return out;
}

// Fisher-Yates on the raw 64-bit output: the same order on every platform
// (std::shuffle's is the library's choice).
std::vector<size_t> shuffled(size_t n, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);
  return idx;
}

std::string grid(const Volume& v) {
  return std::to_string(v.w) + "x" + std::to_string(v.h) + (v.dims == 3 ? "x" + std::to_string(v.d) : "");
}

}  // namespace

Dataset open_folders(const std::string& root, const DatasetOptions& opt) {
  Dataset ds;
  ds.source = root, ds.layout = "folders";
  const fs::path idir = fs::path(root) / opt.image_dir, ldir = fs::path(root) / opt.label_dir;
  require_dir(idir, "a folder dataset holds " + opt.image_dir + "/ and " + opt.label_dir +
                        "/ with the same file names");
  const bool have_labels = is_folder(ldir);
  if (!have_labels && opt.require_labels)
    throw FileError(ldir.string() + ": no such folder; training needs a label for every image in " + idir.string());
  const auto images = image_files(idir);
  const auto labels = have_labels ? image_files(ldir) : std::map<std::string, std::string>{};
  for (const auto& [name, path] : labels)
    if (!images.count(name))
      throw FileError(path + " is a label without an image: expected " + (idir / name).string() +
                      "; add the image or remove the label");
  for (const auto& [name, path] : images) {
    Case c{image_stem(name), {path}, ""};
    if (auto it = labels.find(name); it != labels.end()) c.label = it->second;
    else if (opt.require_labels)
      throw FileError(path + " has no label: expected " + (ldir / name).string() +
                      "; add the label or remove the image");
    ds.cases.push_back(std::move(c));
  }
  require_cases(ds, "put images in " + idir.string());
  sort_cases(ds.cases);
  return ds;
}

Dataset open_csv(const std::string& csv, const DatasetOptions& opt) {
  Dataset ds;
  ds.source = csv, ds.layout = "csv";
  std::ifstream in(csv);
  if (!in) throw FileError(csv + ": cannot open the CSV manifest");
  std::string line;
  if (!std::getline(in, line)) throw FileError(csv + ": empty file; expected a header row such as path,pathmsk");
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // a UTF-8 byte-order mark
  const auto header = csv_fields(line);
  auto column = [&](const std::string& name, bool required) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    if (!required) return -1;
    std::string have;
    for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
    throw FileError(csv + ": no column \"" + name + "\" (the header has: " + have +
                    "); name the columns with --image-column / --label-column");
  };
  const int ic = column(opt.image_column, true), lc = column(opt.label_column, opt.require_labels);
  const fs::path base = fs::path(csv).parent_path();
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };
  std::set<std::string> ids;
  for (int row = 2; std::getline(in, line); ++row) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto f = csv_fields(line);
    const std::string where = csv + " row " + std::to_string(row);
    const std::string image = ic < static_cast<int>(f.size()) ? f[ic] : "";
    const std::string label = lc >= 0 && lc < static_cast<int>(f.size()) ? f[lc] : "";
    if (image.empty())
      throw FileError(where + ": a label without an image (column " + opt.image_column + " is empty)");
    Case c{image_stem(image), {resolve(image)}, label.empty() ? "" : resolve(label)};
    if (label.empty() && opt.require_labels)
      throw FileError(where + ": " + image + " has no label (column " + opt.label_column + " is empty)");
    if (!path_exists(c.images[0])) throw FileError(where + ": " + c.images[0] + " does not exist");
    if (!c.label.empty() && !path_exists(c.label)) throw FileError(where + ": " + c.label + " does not exist");
    if (!ids.insert(c.id).second)
      throw FileError(where + ": case " + c.id + " appears twice; list each image once");
    ds.cases.push_back(std::move(c));
  }
  require_cases(ds, "add one row per image under the header");
  sort_cases(ds.cases);
  return ds;
}

// dataset.json's parts, read by open_decathlon.
namespace {
namespace decathlon {

nlohmann::json read_json(const fs::path& jpath) {
  const std::string jname = jpath.string();
  std::ifstream in(jpath);
  if (!in) throw FileError(jname + ": cannot open; a decathlon dataset needs dataset.json beside imagesTr/");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(jname + ": not valid JSON (" + e.what() + ")");
  }
}

// "channel_names" (nnU-Net v2) or "modality" (MSD): {"0": "CT", ...}, numbered from 0.
std::vector<std::string> channels(const nlohmann::json& j, const std::string& jname) {
  std::vector<std::string> names;
  const char* chan_key = j.contains("channel_names") ? "channel_names" : "modality";
  if (!j.contains(chan_key) || !j[chan_key].is_object() || j[chan_key].empty())
    throw FileError(jname + ": no \"channel_names\" (or MSD \"modality\") object; add e.g. \"channel_names\": {\"0\": \"CT\"}");
  std::map<int, std::string> chans;
  for (const auto& [k, v] : j[chan_key].items()) {
    int idx;
    try {
      size_t used;
      idx = std::stoi(k, &used);
      if (used != k.size() || idx < 0) throw std::invalid_argument(k);
    } catch (const std::exception&) {
      throw FileError(jname + ": \"" + chan_key + "\" key \"" + k + "\" is not a channel number (0, 1, ...)");
    }
    chans[idx] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  for (int i = 0; i < static_cast<int>(chans.size()); ++i) {
    if (!chans.count(i)) throw FileError(jname + ": \"" + chan_key + "\" skips channel " + std::to_string(i));
    names.push_back(chans[i]);
  }
  return names;
}

// "labels": name -> value (nnU-Net v2) or value -> name (MSD), values 0..n-1.
std::vector<std::string> classes(const nlohmann::json& j, const std::string& jname) {
  std::vector<std::string> names;
  if (!j.contains("labels") || !j["labels"].is_object() || j["labels"].empty())
    throw FileError(jname + ": no \"labels\" object; add e.g. \"labels\": {\"background\": 0, \"lung\": 1}");
  std::map<int, std::string> by_value;
  for (const auto& [k, v] : j["labels"].items()) {
    int value;
    std::string name;
    if (v.is_number_integer()) {
      value = v.get<int>(), name = k;  // nnU-Net v2: name -> value
    } else if (v.is_string()) {
      try {  // MSD: value -> name
        size_t used;
        value = std::stoi(k, &used);
        if (used != k.size()) throw std::invalid_argument(k);
      } catch (const std::exception&) {
        throw FileError(jname + ": \"labels\" entry \"" + k + "\": \"" + v.get<std::string>() +
                        "\" maps neither a name to a value nor a value to a name");
      }
      name = v.get<std::string>();
    } else {
      throw FileError(jname + ": \"labels\" entry \"" + k + "\" is " + v.dump() +
                      "; expected a class value (regions are not supported)");
    }
    if (value < 0 || by_value.count(value))
      throw FileError(jname + ": \"labels\" gives class value " + std::to_string(value) + " twice or negative");
    by_value[value] = name;
  }
  for (int i = 0; i < static_cast<int>(by_value.size()); ++i) {
    if (!by_value.count(i))
      throw FileError(jname + ": \"labels\" skips class value " + std::to_string(i) + "; values must be 0..n-1");
    names.push_back(by_value[i]);
  }
  return names;
}

// MSD's own form: pairs listed under "training", one (possibly 4D) file per case.
std::vector<Case> listed_cases(const nlohmann::json& j, const std::string& root, const std::string& jname,
                               const DatasetOptions& opt) {
  std::vector<Case> cases;
  for (const auto& t : j["training"]) {
    if (!t.is_object() || !t.contains("image") || !t["image"].is_string())
      throw FileError(jname + ": a \"training\" entry lacks \"image\": " + t.dump());
    Case c{image_stem(t["image"].get<std::string>()), {(fs::path(root) / t["image"].get<std::string>()).lexically_normal().string()}, ""};
    if (t.contains("label") && t["label"].is_string())
      c.label = (fs::path(root) / t["label"].get<std::string>()).lexically_normal().string();
    if (!path_exists(c.images[0])) throw FileError(jname + ": lists " + c.images[0] + ", which does not exist");
    if (c.label.empty() && opt.require_labels) throw FileError(jname + ": case " + c.id + " has no \"label\"");
    if (!c.label.empty() && !path_exists(c.label))
      throw FileError(jname + ": lists " + c.label + ", which does not exist");
    cases.push_back(std::move(c));
  }
  return cases;
}

// nnU-Net v2's form: imagesTr/CASE_XXXX<ending> (XXXX the channel) and labelsTr/CASE<ending>.
std::vector<Case> scanned_cases(const fs::path& idir, const fs::path& ldir, const std::string& ending, int channels,
                                const std::string& jname, const DatasetOptions& opt) {
  std::vector<Case> cases;
  require_dir(idir, "a decathlon dataset keeps its images in imagesTr/ as CASE_0000" + ending);
  std::map<std::string, std::map<int, std::string>> found;  // case -> channel -> path
  for (const auto& e : fs::directory_iterator(idir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.size() <= ending.size() + 5 ||
        name.compare(name.size() - ending.size(), std::string::npos, ending) != 0)
      continue;
    const std::string base = name.substr(0, name.size() - ending.size());
    const std::string digits = base.substr(base.size() - 4);
    if (base[base.size() - 5] != '_' || !std::all_of(digits.begin(), digits.end(), ::isdigit))
      throw FileError(e.path().string() + ": not named CASE_XXXX" + ending + " (XXXX the channel, 0000 for the first)");
    found[base.substr(0, base.size() - 5)][std::stoi(digits)] = e.path().string();
  }
  for (auto& [id, files] : found) {
    Case c{id, {}, ""};
    for (int ch = 0; ch < channels; ++ch) {
      auto it = files.find(ch);
      if (it == files.end()) {
        char suffix[16];
        std::snprintf(suffix, sizeof suffix, "_%04d", ch);
        throw FileError((idir / (id + suffix + ending)).string() + " is missing: dataset.json names " +
                        std::to_string(channels) + " channels, so case " + id + " needs one file each");
      }
      c.images.push_back(it->second);
    }
    if (files.rbegin()->first >= channels)
      throw FileError(files.rbegin()->second + ": channel " + std::to_string(files.rbegin()->first) +
                      " beyond the " + std::to_string(channels) + " channels of " + jname);
    const fs::path label = ldir / (id + ending);
    if (path_exists(label)) c.label = label.string();
    else if (opt.require_labels)
      throw FileError(c.images[0] + " has no label: expected " + label.string() + "; add the label or remove the image");
    cases.push_back(std::move(c));
  }
  if (is_folder(ldir))
    for (const auto& e : fs::directory_iterator(ldir)) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.size() <= ending.size() ||
          name.compare(name.size() - ending.size(), std::string::npos, ending) != 0)
        continue;
      if (!found.count(name.substr(0, name.size() - ending.size())))
        throw FileError(e.path().string() + " is a label without an image: expected " +
                        (idir / (name.substr(0, name.size() - ending.size()) + "_0000" + ending)).string() +
                        "; add the image or remove the label");
    }
  return cases;
}

}  // namespace decathlon
}  // namespace

Dataset open_decathlon(const std::string& root, const DatasetOptions& opt) {
  Dataset ds;
  ds.source = root, ds.layout = "decathlon";
  const fs::path jpath = fs::path(root) / "dataset.json";
  const std::string jname = jpath.string();
  const nlohmann::json j = decathlon::read_json(jpath);
  ds.channels = decathlon::channels(j, jname);
  ds.classes = decathlon::classes(j, jname);
  const std::string ending = j.value("file_ending", std::string(".nii.gz"));
  const fs::path idir = fs::path(root) / "imagesTr", ldir = fs::path(root) / "labelsTr";
  if (j.contains("training") && j["training"].is_array() && !j["training"].empty())
    ds.cases = decathlon::listed_cases(j, root, jname, opt);
  else
    ds.cases = decathlon::scanned_cases(idir, ldir, ending, static_cast<int>(ds.channels.size()), jname, opt);
  require_cases(ds, "put CASE_0000" + ending + " files in " + idir.string());
  sort_cases(ds.cases);
  return ds;
}

Dataset open_dataset(const std::string& path, const DatasetOptions& opt) {
  if (is_file(path) && has_extension(path, ".csv")) return open_csv(path, opt);
  if (is_file(fs::path(path) / "dataset.json")) return open_decathlon(path, opt);
  if (is_folder(fs::path(path) / opt.image_dir)) return open_folders(path, opt);
  throw FileError(path + ": not a dataset; expected a .csv manifest, a folder with dataset.json (nnU-Net / "
                  "Decathlon), or a folder with " + opt.image_dir + "/ and " + opt.label_dir + "/");
}

Split split_by_ids(const Dataset& ds, const std::vector<std::string>& val_ids,
                   const std::vector<std::string>& train_ids) {
  std::map<std::string, size_t> where;
  for (size_t i = 0; i < ds.cases.size(); ++i) where[ds.cases[i].id] = i;
  auto find = [&](const std::string& id) {
    auto it = where.find(id);
    if (it == where.end()) throw FileError(ds.source + ": the split names case \"" + id + "\", which is not in the dataset");
    return it->second;
  };
  std::vector<size_t> val, train;
  std::set<size_t> in_val;
  for (const auto& id : val_ids) val.push_back(find(id)), in_val.insert(val.back());
  if (train_ids.empty()) {
    for (size_t i = 0; i < ds.cases.size(); ++i)
      if (!in_val.count(i)) train.push_back(i);
  } else {
    for (const auto& id : train_ids) {
      train.push_back(find(id));
      if (in_val.count(train.back()))
        throw FileError(ds.source + ": case \"" + id + "\" is in both the training and the validation split");
    }
  }
  return {pick(ds, train), pick(ds, val)};
}

Split split_fraction(const Dataset& ds, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0 && val_fraction < 1))
    throw std::invalid_argument("validation fraction must lie in [0, 1), got " + std::to_string(val_fraction));
  const size_t n = ds.cases.size();
  size_t nval = static_cast<size_t>(std::llround(val_fraction * n));
  if (val_fraction > 0 && nval == 0 && n > 1) nval = 1;
  if (nval >= n && n > 0) nval = n - 1;
  std::vector<size_t> idx = shuffled(n, seed);
  std::vector<size_t> val(idx.begin(), idx.begin() + nval), train(idx.begin() + nval, idx.end());
  std::sort(val.begin(), val.end()), std::sort(train.begin(), train.end());
  return {pick(ds, train), pick(ds, val)};
}

Split split_kfold(const Dataset& ds, int fold, int k, uint64_t seed) {
  const size_t n = ds.cases.size();
  if (k < 2 || fold < 0 || fold >= k)
    throw std::invalid_argument("fold " + std::to_string(fold) + " of " + std::to_string(k) +
                                ": need k >= 2 and 0 <= fold < k");
  if (static_cast<size_t>(k) > n)
    throw std::invalid_argument(std::to_string(k) + " folds of " + std::to_string(n) + " cases: use k <= cases");
  const std::vector<size_t> idx = shuffled(n, seed);
  // As scikit-learn's KFold: the first n % k folds are one case larger.
  size_t begin = 0;
  for (int f = 0; f < fold; ++f) begin += n / k + (static_cast<size_t>(f) < n % k);
  const size_t end = begin + n / k + (static_cast<size_t>(fold) < n % k);
  std::vector<size_t> val(idx.begin() + begin, idx.begin() + end), train;
  for (size_t i = 0; i < n; ++i)
    if (i < begin || i >= end) train.push_back(idx[i]);
  std::sort(val.begin(), val.end()), std::sort(train.begin(), train.end());
  return {pick(ds, train), pick(ds, val)};
}

Volume read_case_image(const Case& c) {
  if (c.images.empty()) throw FileError("case " + c.id + ": no image file");
  Volume out = read_image(c.images[0]);
  check_finite(out);
  for (size_t i = 1; i < c.images.size(); ++i) {
    Volume ch = read_image(c.images[i]);
    check_finite(ch);
    if (!ch.same_grid(out))
      throw FileError("channels of case " + c.id + " on different grids: " + c.images[0] + " is " + grid(out) +
                      ", " + c.images[i] + " is " + grid(ch));
    out.voxels.insert(out.voxels.end(), ch.voxels.begin(), ch.voxels.end());
    out.c += ch.c;
  }
  return out;
}

CaseData load_case(const Case& c, const LabelSpec& spec) {
  CaseData data;
  data.image = read_case_image(c);
  if (c.label.empty()) return data;
  const Volume label = read_image(c.label);
  if (!label.same_grid(data.image))
    throw FileError("image and label of different shapes: " + c.images[0] + " is " + grid(data.image) + ", " +
                    c.label + " is " + grid(label));
  data.label = to_classes(label, spec);  // checks finiteness with its own message
  return data;
}

Sample to_sample(CaseData&& data, const NormalizationStats& norm) {
  normalize(data.image, norm);
  Sample s;
  s.c = data.image.c, s.d = data.image.d, s.h = data.image.h, s.w = data.image.w, s.dims = data.image.dims;
  s.image = std::move(data.image.voxels);
  s.label = std::move(data.label);
  return s;
}

void save_sample(const Sample& s, const std::string& prefix) {
  Volume img, lab;
  for (Volume* v : {&img, &lab}) v->d = s.d, v->h = s.h, v->w = s.w, v->dims = s.dims;
  int32_t top = 1;
  for (int32_t v : s.label) top = std::max(top, v);
  if (s.dims == 3) {
    img.c = s.c, img.voxels = s.image;
    write_nifti(prefix + "_image.nii.gz", img, "float32");
    if (s.labelled()) {
      lab.voxels.assign(s.label.begin(), s.label.end());
      write_nifti(prefix + "_label.nii.gz", lab, "int16");
    }
    return;
  }
  // 2D: something a person can look at, so the first channel is stretched to 0..255.
  const auto [lo, hi] = std::minmax_element(s.image.begin(), s.image.begin() + s.spatial());
  const float range = *hi > *lo ? *hi - *lo : 1.f;
  img.voxels.resize(s.spatial());
  for (int64_t i = 0; i < s.spatial(); ++i) img.voxels[i] = (s.image[i] - *lo) / range * 255.f;
  write_png(prefix + "_image.png", img);
  if (s.labelled()) {
    lab.voxels.resize(s.spatial());
    for (int64_t i = 0; i < s.spatial(); ++i) lab.voxels[i] = s.label[i] < 0 ? 0.f : 255.f * s.label[i] / top;
    write_png(prefix + "_label.png", lab);
  }
}

}  // namespace unet
