// Writing a file so that a crash leaves the old file or the new one, never half
// of one: the bytes go to a temporary file in the same folder (so that the
// final rename is atomic), are flushed to disk, and only then take the name;
// the folder is flushed after the rename. Every step is a "write" fault point
// (io/fault_injection.h).
#pragma once

#include <string>

namespace unet {

// A temporary file beside `path` whose name ends in `suffix` (a writer that picks
// its format by extension, such as libpng's or nifti_clib's, writes it by
// name()); commit() flushes it to disk and renames it to `path`; the destructor
// removes it if commit() was never reached.
class TempFile {
 public:
  TempFile(const std::string& path, const std::string& suffix);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& name() const { return tmp_; }
  void commit();  // throws FileError naming `path`

 private:
  std::string path_, tmp_;
  bool done_ = false;
};

// fsync of a folder: the names created, renamed or removed in it reach the disk.
// Throws FileError naming it.
void sync_folder(const std::string& dir);

// Writes `bytes` to `path` through a TempFile; throws FileError naming the file,
// and then `path` is unchanged.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace unet
