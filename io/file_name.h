// File names as the readers match them: extensions compare case-insensitively,
// since scanners and their exports write ".NII.GZ" as often as ".nii.gz".
#pragma once

#include <cctype>
#include <string>

namespace unet {

// Whether `path` ends in `ext` (lower case, with its dot: ".nii.gz"), whatever the case of `path`.
inline bool has_extension(const std::string& path, const std::string& ext) {
  if (path.size() < ext.size()) return false;
  for (size_t i = 0; i < ext.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(path[path.size() - ext.size() + i])) != ext[i]) return false;
  return true;
}

}  // namespace unet
