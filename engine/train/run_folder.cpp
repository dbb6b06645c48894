#include "engine/train/run_folder.h"

#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/storage/checkpoint.h"
#include "io/fault_injection.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCheckpoints = "checkpoints";
constexpr const char* kWeights = "weights.safetensors";
constexpr const char* kState = "state.safetensors";
constexpr const char* kBest = "best.safetensors";
constexpr const char* kLatest = "latest";

std::string step_folder(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", (long long)step);
  return name;
}

// The step of a "step-N" folder name; -1 for any other name.
int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() == 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

// A digest of everything a weights file holds (metadata, names, shapes, values):
// the state file stores its weights' digest, so that a pairing is checked.
std::string digest(const Safetensors& f) {
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  auto add = [&](const void* p, size_t n) { XXH3_64bits_update(h, p, n); };
  for (const auto& [k, v] : f.metadata) add(k.data(), k.size() + 1), add(v.data(), v.size() + 1);
  for (const NamedTensor& t : f.tensors) {
    add(t.name.data(), t.name.size() + 1);
    add(t.shape.data(), t.shape.size() * sizeof(int64_t));
    add(t.values.data(), t.values.size() * sizeof(float));
  }
  const XXH64_hash_t d = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d);
  return hex;
}

// The choices a refused run folder leaves the user.
std::string choices(const std::string& dir) {
  return "; choose: --resume CHECKPOINT (a checkpoint folder to continue from), --load-weights " + dir +
         "/best.safetensors with a new --run-dir (to fine-tune from these weights), or another --run-dir";
}

std::string metadata_at(const Safetensors& f, const std::string& key, const std::string& path) {
  const auto it = f.metadata.find(key);
  if (it == f.metadata.end()) throw FileError(path + ": metadata \"" + key + "\" missing");
  return it->second;
}

// One step of writing a checkpoint, and a "write" fault point.
template <class Op>
void fs_step(const std::string& target, const std::string& what, Op op) {
  std::error_code ec;
  if (fault_at("write"))
    ec = std::make_error_code(std::errc::no_space_on_device);
  else
    op(ec);
  if (ec) throw FileError(target + ": " + what + " (" + ec.message() + ")");
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) std::fprintf(stderr, "warning: cannot remove %s (%s); remove it by hand\n", p.c_str(), ec.message().c_str());
}

// A checkpoint's files in `dir` (made here), flushed to disk: the weights
// stamped with the step, the state with the step and the weights' digest.
void write_checkpoint(const fs::path& dir, const UNet& model, const TrainState& s,
                      const std::map<std::string, std::string>& metadata) {
  fs_step(dir.string(), "cannot create the checkpoint folder", [&](std::error_code& ec) { fs::create_directory(dir, ec); });
  std::map<std::string, std::string> stamped = metadata;
  stamped["unet.step"] = std::to_string(s.step);
  const Safetensors weights = weights_of(model, stamped);
  write_safetensors((dir / kWeights).string(), weights);
  Safetensors f;
  f.metadata = {{"step", std::to_string(s.step)},
                {"weights_digest", digest(weights)},
                {"best", nlohmann::json(s.best).dump()},
                {"best_step", std::to_string(s.best_step)},
                {"bad_validations", std::to_string(s.bad_validations)},
                {"loss_scale", nlohmann::json(s.loss_scale).dump()},
                {"good_steps", std::to_string(s.good_steps)},
                {"ranks", std::to_string(s.ranks)},
                {"unet.config", config_to_json(model.config())}};
  f.tensors.push_back({"optimizer.m", {static_cast<int64_t>(s.m.size())}, s.m});
  f.tensors.push_back({"optimizer.v", {static_cast<int64_t>(s.v.size())}, s.v});
  write_safetensors((dir / kState).string(), f);
  sync_folder(dir.string());
}

}  // namespace

std::string RunFolder::path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::vector<std::string> RunFolder::checkpoints() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(path(kCheckpoints), ec))
    if (e.is_directory() && step_of(e.path().filename().string()) >= 0)
      found.push_back({step_of(e.path().filename().string()), e.path().string()});
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

void RunFolder::start(bool resume_required, const std::string& resume_from, bool loading_weights) const {
  const bool resuming = !resume_from.empty() || !checkpoints().empty();
  if (resume_required && !resuming)
    throw std::invalid_argument("--resume: " + dir_ + " holds no checkpoint (" + kCheckpoints +
                                "/step-*) to resume; name one with --resume CHECKPOINT");
  if (resuming && loading_weights)
    throw std::invalid_argument("--load-weights: " + dir_ + " already holds a checkpoint, which would replace them; "
                                "use a new --run-dir to start from other weights");
  if (!resuming) {
    // Weights without a checkpoint: a finished run's best, or an earlier unet's last.*.
    for (const char* f : {kBest, "last.safetensors", "last.state.safetensors"})
      if (fs::exists(path(f)))
        throw std::invalid_argument(dir_ + " holds " + f + " but no checkpoint to resume from (" + kCheckpoints +
                                    "/step-*): starting over would overwrite it" + choices(dir_));
  }
  // Writable now, not at the first checkpoint after hours of training.
  try {
    fs::create_directories(path(kCheckpoints));
    write_file_atomic(path(".writable"), "");
    fs::remove(path(".writable"));
  } catch (const std::exception& e) {
    throw FileError(dir_ + ": the run folder is not writable (" + e.what() + "); use another --run-dir");
  }
}

void RunFolder::check_space(int64_t checkpoint_bytes) const {
  struct statvfs fs_info;
  if (::statvfs(dir_.c_str(), &fs_info) != 0) return;  // a filesystem that cannot say: the writes will
  const double free_mib = double(fs_info.f_bavail) * double(fs_info.f_frsize) / (1 << 20);
  const double need_mib = 2.0 * double(checkpoint_bytes) / (1 << 20);
  if (free_mib < need_mib) {
    char msg[512];
    std::snprintf(msg, sizeof msg,
                  "%s: %.1f MiB free, and two checkpoints of %.1f MiB each must fit (the new one is written whole "
                  "before the old one is removed): free %.1f MiB there, or use a --run-dir on another filesystem",
                  dir_.c_str(), free_mib, need_mib / 2, need_mib - free_mib);
    throw std::runtime_error(msg);
  }
}

void RunFolder::write(const std::string& name, const std::string& bytes) const { write_file_atomic(path(name), bytes); }

void RunFolder::append_metrics(const nlohmann::json& line) const {
  const std::string log = path("metrics.jsonl");
  std::ofstream f(log, std::ios::app);
  f << line.dump() << '\n';
  if (!f) throw FileError(log + ": cannot append to the metrics log");
}

void RunFolder::trim_metrics(int64_t step) const {
  std::ifstream in(path("metrics.jsonl"));
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("step", int64_t(-1)) <= step) kept += line + '\n';
  }
  write("metrics.jsonl", kept);
}

void RunFolder::save_checkpoint(const UNet& model, const TrainState& s,
                                const std::map<std::string, std::string>& metadata) const {
  const fs::path root = path(kCheckpoints), name = step_folder(s.step);
  const fs::path part = root / ("." + name.string() + ".incomplete"), done = root / name;
  remove_quietly(part);  // a crash's leftover
  try {
    write_checkpoint(part, model, s, metadata);
  } catch (...) {
    remove_quietly(part);  // a failed write leaves the previous checkpoint, and nothing else
    throw;
  }
  // Whole on disk: one rename makes it a checkpoint. A folder of the same step
  // (a damaged one, passed over at the resume) gives way first.
  if (fs::exists(done)) remove_quietly(done);
  fs_step(done.string(), "cannot rename the finished checkpoint into place",
          [&](std::error_code& ec) { fs::rename(part, done, ec); });
  sync_folder(root.string());
  make_latest(name.string());
}

void RunFolder::make_latest(const std::string& name) const {
  const fs::path root = path(kCheckpoints), link = root / ".latest.incomplete", latest = root / kLatest;
  fs::remove(link);
  fs_step(latest.string(), "cannot make the link to " + name,
          [&](std::error_code& ec) { fs::create_directory_symlink(name, link, ec); });
  fs_step(latest.string(), "cannot point it at " + name, [&](std::error_code& ec) { fs::rename(link, latest, ec); });
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename() != name && e.path().filename() != kLatest) remove_quietly(e.path());
  sync_folder(root.string());
}

void RunFolder::settle(const std::string& resumed) const {
  const fs::path dir = fs::path(resumed).lexically_normal();
  if (fs::weakly_canonical(dir.parent_path()) != fs::weakly_canonical(path(kCheckpoints))) return;  // another run's
  if (checkpoints().size() == 1 && fs::weakly_canonical(path(kCheckpoints) + "/" + kLatest) == fs::weakly_canonical(dir))
    return;
  make_latest(dir.filename().string());
}

std::string RunFolder::load_checkpoint(UNet& model, TrainState& s, const std::string& from) const {
  // A named checkpoint, unless this folder went on from it: a requeued job
  // that names one on its command line resumes its own newest.
  std::vector<std::string> candidates = checkpoints();
  if (!from.empty()) {
    const int64_t named = step_of(fs::path(from).lexically_normal().filename().string());
    if (!candidates.empty() && fs::weakly_canonical(candidates[0]) != fs::weakly_canonical(from) &&
        step_of(fs::path(candidates[0]).filename().string()) > named)
      std::printf("resuming %s, newer than the named %s: this run went on from it\n", candidates[0].c_str(),
                  from.c_str());
    else
      candidates = {from};
  }
  if (candidates.empty()) return "";
  std::string problems;
  for (const std::string& dir : candidates) {
    const std::string wpath = (fs::path(dir) / kWeights).string(), spath = (fs::path(dir) / kState).string();
    try {
      const Safetensors weights = read_safetensors(wpath), state = read_safetensors(spath);
      const UNetConfig stored = stored_config(weights, wpath);
      if (config_to_json(stored) != config_to_json(model.config()))
        throw std::invalid_argument(wpath + ": a checkpoint of another model (" + stored.str() + "); this run asks for " +
                                    model.config().str() + ". Use the same model options to resume" + choices(dir_));
      const std::string step = metadata_at(state, "step", spath), weights_step = metadata_at(weights, "unet.step", wpath);
      const int64_t named = step_of(fs::path(dir).filename().string());
      if (step != weights_step || (named >= 0 && std::to_string(named) != step))
        throw FileError(dir + ": the state is of step " + step + ", the weights of step " + weights_step +
                        " (the folder's name says " + std::to_string(named) + ")");
      if (metadata_at(state, "weights_digest", spath) != digest(weights))
        throw FileError(dir + ": the weights are not the ones its state was saved with (digest differs)");
      load_weights(model, weights, wpath);
      try {
        s.step = std::stoll(step);
        s.best = nlohmann::json::parse(state.metadata.at("best")).get<double>();
        s.best_step = std::stoll(state.metadata.at("best_step"));
        s.bad_validations = std::stoll(state.metadata.at("bad_validations"));
        s.loss_scale = nlohmann::json::parse(state.metadata.at("loss_scale")).get<float>();
        s.good_steps = std::stoll(state.metadata.at("good_steps"));
        s.ranks = std::stoi(state.metadata.at("ranks"));
      } catch (const std::exception& e) {
        throw FileError(spath + ": training state metadata incomplete (" + e.what() + ")");
      }
      for (auto [name, dst] : {std::pair{"optimizer.m", &s.m}, std::pair{"optimizer.v", &s.v}}) {
        const NamedTensor* t = state.find(name);
        if (!t || t->values.size() != dst->size())
          throw FileError(spath + ": " + name + " is missing or does not match the model's " +
                          std::to_string(dst->size()) + " parameters");
        *dst = t->values;
      }
      return dir;
    } catch (const FileError& e) {
      std::fprintf(stderr, "checkpoint %s is damaged, passed over: %s\n", dir.c_str(), e.what());
      problems += std::string("\n  ") + e.what();
    }
  }
  throw FileError(dir_ + ": no complete checkpoint to resume from:" + problems + "\n" + choices(dir_).substr(2));
}

void RunFolder::save_best(const UNet& model, int64_t step, const std::map<std::string, std::string>& metadata) const {
  std::map<std::string, std::string> stamped = metadata;
  stamped["unet.step"] = std::to_string(step);
  save_weights(path(kBest), model, stamped, WeightsFor::prediction);
}

bool RunFolder::load_best(UNet& model) const {
  const std::string best = path(kBest);
  if (!fs::exists(best)) return false;
  load_weights(model, read_safetensors(best), best);
  return true;
}

void RunFolder::restore_best(const UNet& model, const TrainState& s,
                             const std::map<std::string, std::string>& metadata) const {
  if (s.best_step != s.step) return;
  std::string saved_at;
  try {
    saved_at = read_safetensors(path(kBest)).metadata.at("unet.step");
  } catch (const std::exception&) {  // missing or damaged: written again below
  }
  if (saved_at != std::to_string(s.step)) save_best(model, s.step, metadata);
}

}  // namespace unet
