#include "engine/storage/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace unet {
namespace {

// Checkpoints beyond this are certainly corrupt headers, not models.
constexpr uint64_t kMaxHeader = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw FileError(path + ": " + what);
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

const NamedTensor* Safetensors::find(const std::string& name) const {
  for (const NamedTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const Safetensors& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const NamedTensor& t : file.tensors) {
    int64_t count = 1;
    for (int64_t d : t.shape) count *= d;
    if (count != static_cast<int64_t>(t.values.size()))
      throw std::invalid_argument("safetensors: tensor " + t.name + " has " + std::to_string(t.values.size()) +
                                  " values for its shape");
    const uint64_t bytes = t.values.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += json;
  out.reserve(out.size() + offset);
  for (const NamedTensor& t : file.tensors)
    out.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
  write_file_atomic(path, out);
}

Safetensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open (" + errno_text() + ")");
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char len[8];
  if (size < 8 || !in.read(reinterpret_cast<char*>(len), 8))
    fail(path, "too short for a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (n > kMaxHeader || n > size - 8)
    fail(path, "header length " + std::to_string(n) + " does not fit the file (" + std::to_string(size) +
                   " bytes): not a safetensors file, or truncated");
  std::string json(n, '\0');
  in.read(json.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  const uint64_t data_size = size - 8 - n;
  Safetensors out;
  struct Entry {
    uint64_t begin, end;
    NamedTensor t;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(path, "__metadata__ is not an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path, "__metadata__ field " + m.key() + " is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const auto& v = *it;
    const std::string where = "tensor " + it.key();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(path, where + ": expected dtype, shape and data_offsets");
    if (v["dtype"] != "F32") fail(path, where + ": dtype " + v["dtype"].dump() + ", expected \"F32\" (float32)");
    Entry e;
    e.t.name = it.key();
    uint64_t count = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(path, where + ": shape " + v["shape"].dump());
      e.t.shape.push_back(d.get<int64_t>());
      count *= d.get<uint64_t>();
      if (count > data_size) fail(path, where + ": shape " + v["shape"].dump() + " exceeds the file");
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets " + off.dump() + ", expected [begin, end]");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size || e.end - e.begin != count * sizeof(float))
      fail(path, where + ": data_offsets " + off.dump() + " do not match its shape or the file's " +
                     std::to_string(data_size) + " data bytes (truncated?)");
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (Entry& e : entries) {
    e.t.values.resize((e.end - e.begin) / sizeof(float));
    in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
    if (!in.read(reinterpret_cast<char*>(e.t.values.data()), static_cast<std::streamsize>(e.end - e.begin)))
      fail(path, "tensor " + e.t.name + ": cannot read its data (truncated?)");
    out.tensors.push_back(std::move(e.t));
  }
  return out;
}

}  // namespace unet
