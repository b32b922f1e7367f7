#include "tracker/proc_maps.hpp"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "lib/base/text_file.hpp"

namespace wpckpt::tracker {
namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool Vma::has_flag(const char* flag) const {
  for (const std::string& f : vm_flags)
    if (f == flag) return true;
  return false;
}

std::string Vma::prot_string() const {
  std::string s = "----";
  if (read) s[0] = 'r';
  if (write) s[1] = 'w';
  if (exec) s[2] = 'x';
  s[3] = shared ? 's' : 'p';
  return s;
}

bool parse_maps_line(const std::string& line, Vma& out) {
  // start-end perms offset major:minor inode   name
  if (line.empty() || !is_hex(line[0])) return false;
  char perms[5] = {};
  int name_pos = -1;
  uint64_t start, end, offset, inode;
  unsigned major, minor;
  if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &start, &end, perms,
                  &offset, &major, &minor, &inode, &name_pos) < 7)
    return false;
  if (std::strlen(perms) != 4 || start >= end) return false;
  out = Vma{};
  out.start = start;
  out.end = end;
  out.read = perms[0] == 'r';
  out.write = perms[1] == 'w';
  out.exec = perms[2] == 'x';
  out.shared = perms[3] == 's';
  out.offset = offset;
  out.dev_major = major;
  out.dev_minor = minor;
  out.inode = inode;
  if (name_pos > 0 && static_cast<size_t>(name_pos) < line.size()) out.name = line.substr(static_cast<size_t>(name_pos));
  return true;
}

Result<std::vector<Vma>> read_maps(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/maps";
  WPCKPT_TRY_ASSIGN(std::string text, read_text_file(path));
  std::vector<Vma> vmas;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    Vma v;
    if (!parse_maps_line(line, v)) return make_error(EINVAL, "parse", path + ": " + line);
    vmas.push_back(std::move(v));
  }
  return vmas;
}

Result<std::vector<Vma>> read_smaps(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/smaps";
  WPCKPT_TRY_ASSIGN(std::string text, read_text_file(path));
  std::vector<Vma> vmas;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    Vma v;
    if (parse_maps_line(line, v)) {
      vmas.push_back(std::move(v));
    } else if (line.rfind("VmFlags:", 0) == 0 && !vmas.empty()) {
      std::istringstream flags(line.substr(8));
      for (std::string f; flags >> f;) vmas.back().vm_flags.push_back(f);
    }
  }
  return vmas;
}

Result<std::vector<Vma>> read_maps_reusing_flags(pid_t pid, const std::vector<Vma>& earlier) {
  WPCKPT_TRY_ASSIGN(std::vector<Vma> now, read_maps(pid));
  auto same = [](const Vma& a, const Vma& b) {
    return a.start == b.start && a.end == b.end && a.read == b.read && a.write == b.write && a.exec == b.exec &&
           a.shared == b.shared && a.offset == b.offset && a.dev_major == b.dev_major && a.dev_minor == b.dev_minor &&
           a.inode == b.inode && a.name == b.name;
  };
  size_t j = 0;  // both lists are in address order
  for (Vma& v : now) {
    while (j < earlier.size() && earlier[j].end <= v.start) ++j;
    if (j == earlier.size() || !same(v, earlier[j])) return read_smaps(pid);
    v.vm_flags = earlier[j].vm_flags;
  }
  return now;
}

}  // namespace wpckpt::tracker
