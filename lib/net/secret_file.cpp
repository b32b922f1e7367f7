#include "lib/net/secret_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include "lib/base/unique_fd.hpp"

namespace wpckpt::net {

Result<std::vector<uint8_t>> load_secret(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0)
    return errno_error("open secret file", file.string())
        .with_hint("create one with `wpckpt page-server --new-secret FILE` and copy it to both hosts");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat secret file", file.string());
  if (!S_ISREG(st.st_mode)) return make_error(EINVAL, "secret file", file.string() + " is not a regular file");
  if (st.st_uid != ::geteuid())
    return make_error(EPERM, "secret file", file.string() + " belongs to uid " + std::to_string(st.st_uid))
        .with_hint("the secret must belong to the user running wpckpt");
  if ((st.st_mode & 077) != 0)
    return make_error(EPERM, "secret file", fmt::format("{} has mode {:o}: others may read it", file.string(), st.st_mode & 0777))
        .with_hint("chmod 600 " + file.string() + " (and make a new secret: this one may be known)");
  if (st.st_size > static_cast<off_t>(kMaxSecretBytes) + 1)
    return make_error(EINVAL, "secret file", file.string() + " is larger than " + std::to_string(kMaxSecretBytes) + " bytes");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read secret file", file.string());
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  while (!bytes.empty() && (bytes.back() == '\n' || bytes.back() == '\r')) bytes.pop_back();
  if (bytes.size() < kMinSecretBytes || bytes.size() > kMaxSecretBytes)
    return make_error(EINVAL, "secret file", fmt::format("{} holds {} bytes; a secret has {} to {}", file.string(),
                                                         bytes.size(), kMinSecretBytes, kMaxSecretBytes))
        .with_hint("create one with `wpckpt page-server --new-secret FILE`");
  return bytes;
}

Result<void> create_secret(const std::filesystem::path& file) {
  uint8_t raw[32];
  for (size_t got = 0; got < sizeof raw;) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("getrandom");
    got += static_cast<size_t>(n);
  }
  std::string text;
  for (uint8_t b : raw) text += fmt::format("{:02x}", b);
  text += '\n';
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return errno_error("create secret file", file.string()).with_hint("give a path that does not exist yet");
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
    return errno_error("write secret file", file.string());
  return ok();
}

}  // namespace wpckpt::net
