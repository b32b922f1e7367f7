// memfd: the name, the seals, and the contents as an extra image file
// (memfd-<inode>.bin, once per memfd); restore writes the contents back,
// then seals it.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "lib/fds/fd_handler.hpp"

namespace wpckpt::fds {
namespace {

constexpr size_t kMaxMemfdBytes = size_t{1} << 30;
// F_SEAL_SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC (fcntl(2)).
constexpr int kKnownSeals = 0x3f;

Result<std::vector<uint8_t>> read_whole(const std::string& path, uint64_t size) {
  if (size > kMaxMemfdBytes) return make_error(EFBIG, "capture memfd", fmt::format("{} ({} bytes)", path, size));
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno_error("open", path);
  std::vector<uint8_t> data(size);
  size_t got = 0;
  while (got < size) {
    ssize_t r = ::pread(in.get(), data.data() + got, size - got, static_cast<off_t>(got));
    if (r < 0) return errno_error("read", path);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  data.resize(got);
  return data;
}

class MemfdHandler final : public FdHandler {
 public:
  Result<void> capture(const FdSource& src, state::FdState& f, CaptureSoFar& so_far) const override {
    f.file = identity_of(src.link, src.st);
    f.details["name"] = f.file->path.substr(std::strlen("/memfd:"));
    std::string file_name = fmt::format("memfd-{}.bin", src.st.st_ino);
    bool seen = std::any_of(so_far.files.begin(), so_far.files.end(),
                            [&](const auto& p) { return p.first == file_name; });
    if (!seen) {
      WPCKPT_TRY_ASSIGN(auto data, read_whole(src.proc_path, static_cast<uint64_t>(src.st.st_size)));
      so_far.files.emplace_back(file_name, std::move(data));
    }
    f.details["contents_file"] = file_name;
    UniqueFd probe(::open(src.proc_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!probe) return errno_error("open", src.proc_path);
    int seals = ::fcntl(probe.get(), F_GET_SEALS);
    if (seals < 0) return errno_error("fcntl(F_GET_SEALS)", src.proc_path);
    f.details["seals"] = seals;
    return ok();
  }

  Result<void> plan(const state::FdState& f, const ImageFileReader& files, FdObject& o) const override {
    o.name = "restored";
    std::string contents;
    WPCKPT_TRY(detail(f, "name", o.name));
    WPCKPT_TRY(detail(f, "contents_file", contents));
    WPCKPT_TRY(detail(f, "seals", o.seals));
    const std::string where = "fd " + std::to_string(f.fd) + " details";
    if (o.seals & ~kKnownSeals) return state::field_error(where + ".seals", "has unknown seal bits");
    if (o.name.size() > 249 || o.name.find('\0') != std::string::npos)
      return state::field_error(where + ".name", "is not a memfd name (at most 249 bytes, no NUL)");
    if (!contents.empty()) {
      WPCKPT_TRY_ASSIGN(auto bytes, files(contents));
      o.data.resize(bytes.size());
      std::memcpy(o.data.data(), bytes.data(), bytes.size());
    }
    o.seek = true;
    o.pos = f.pos;
    return ok();
  }

  int32_t create(FdObject& o) const override {
    o.tmp[0] = static_cast<int>(syscall(SYS_memfd_create, o.name.c_str(), MFD_ALLOW_SEALING));
    if (o.tmp[0] < 0) return kStepMemfd;
    size_t done = 0;
    while (done < o.data.size()) {
      ssize_t n = ::write(o.tmp[0], o.data.data() + done, o.data.size() - done);
      if (n <= 0) return kStepMemfd;
      done += static_cast<size_t>(n);
    }
    if (lseek(o.tmp[0], static_cast<off_t>(o.pos), SEEK_SET) < 0) return kStepSeek;
    // The seals last: F_SEAL_WRITE would refuse the contents.
    if (o.seals != 0 && fcntl(o.tmp[0], F_ADD_SEALS, o.seals) != 0) return kStepSeals;
    return 0;
  }
};

constinit const MemfdHandler kMemfd;

}  // namespace

const FdHandler& memfd_handler() { return kMemfd; }

}  // namespace wpckpt::fds
