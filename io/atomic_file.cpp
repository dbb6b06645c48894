#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "io/fault_injection.h"
#include "io/file_error.h"

namespace unet {

namespace {

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

void sync_folder(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  const bool synced = fd >= 0 && !fault_at("write") && ::fsync(fd) == 0;
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!synced) throw FileError(dir + ": cannot flush the folder to disk: " + std::strerror(err));
}

TempFile::TempFile(const std::string& path, const std::string& suffix) : path_(path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = folder_of(path);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string name = dir + "/." + base + ".XXXXXX" + suffix;
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  const int fd = ::mkstemps(buf.data(), int(suffix.size()));
  if (fd < 0) throw FileError(path + ": cannot write in " + dir + ": " + std::strerror(errno));
  ::fchmod(fd, 0644);  // mkstemp makes 0600; outputs are for others to read too
  ::close(fd);
  tmp_ = buf.data();
}

TempFile::~TempFile() {
  if (!done_) ::unlink(tmp_.c_str());
}

void TempFile::commit() {
  // On disk before it takes the name, so that a power cut leaves the old file or
  // the new one, never an empty one.
  const int fd = ::open(tmp_.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && !fault_at("write") && ::fsync(fd) == 0;
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!synced) throw FileError(path_ + ": cannot flush the written file to disk: " + std::strerror(err));
  if (fault_at("write") || ::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw FileError(path_ + ": cannot rename the finished file into place: " + std::strerror(errno));
  done_ = true;
  // The rename itself on disk too: a power cut after commit() keeps the new name.
  sync_folder(folder_of(path_));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  TempFile tmp(path, ".tmp");
  const int fd = ::open(tmp.name().c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) throw FileError(tmp.name() + ": cannot open for writing (" + std::strerror(errno) + ")");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = fault_at("write") ? -1 : ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw FileError(tmp.name() + ": write failed after " + std::to_string(done) + " bytes (" + why + "); " + path +
                      " is unchanged");
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0)
    throw FileError(tmp.name() + ": cannot close (" + std::strerror(errno) + "); " + path + " is unchanged");
  tmp.commit();
}

}  // namespace unet
