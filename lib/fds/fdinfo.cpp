#include "lib/fds/fdinfo.hpp"

#include <algorithm>
#include <sstream>

namespace wpckpt::fds {

FdInfo FdInfo::parse(const std::string& text, std::string where) {
  FdInfo info;
  info.where = std::move(where);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    info.lines.push_back(line);
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    info.fields.emplace_back(line.substr(0, colon), value);
  }
  return info;
}

std::string FdInfo::get(const std::string& key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return v;
  return {};
}

bool FdInfo::has(const std::string& key) const {
  return std::any_of(fields.begin(), fields.end(), [&](const auto& f) { return f.first == key; });
}

}  // namespace wpckpt::fds
