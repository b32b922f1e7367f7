// Readers of /proc/PID/maps and /proc/PID/smaps: the address space as the
// kernel reports it. Shared by the tracker (which areas to register and scan)
// and lib/ (what a dump records and a restore rebuilds).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.hpp"

namespace wpckpt::tracker {

struct Vma {
  uint64_t start = 0, end = 0;
  bool read = false, write = false, exec = false, shared = false;  // "rwxs" / "rwxp"
  uint64_t offset = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string name;                   // path, "[heap]", "[stack]", "[vdso]", "" for anonymous
  std::vector<std::string> vm_flags;  // from smaps (only filled by read_smaps)

  uint64_t size() const { return end - start; }
  bool has_flag(const char* flag) const;
  std::string prot_string() const;  // "rw-p"
};

// Parses one line of /proc/PID/maps; false if it is not one.
bool parse_maps_line(std::string_view line, Vma& out);
// /proc/PID/maps, in address order.
Result<std::vector<Vma>> read_maps(pid_t pid);
// /proc/PID/smaps: the same areas with VmFlags filled.
Result<std::vector<Vma>> read_smaps(pid_t pid);
// The areas of /proc/PID/maps now, with the VmFlags of `earlier` (a
// read_smaps() of the same process) when every area is still the same one
// (bounds, protection, offset, device, inode, name); else read_smaps(pid).
// smaps walks every page table (about 20-60 ms per populated GiB): a dump
// reads it before freezing and only maps (no page walk) while frozen.
// Limit: a flag change that splits nothing (madvise or mlock of a whole
// area) between the two reads is not seen.
Result<std::vector<Vma>> read_maps_reusing_flags(pid_t pid, const std::vector<Vma>& earlier);
// `given` (the areas a caller read already, e.g. once per freeze) when not
// null; else read_maps(pid) kept in `storage`. The result points at one of them.
Result<const std::vector<Vma>*> given_or_read_maps(pid_t pid, const std::vector<Vma>* given, std::vector<Vma>& storage);

}  // namespace wpckpt::tracker
