// Helpers of the privilege tests: a real non-root user created for the test
// (and removed after it), a copy of wpckpt with file capabilities, and
// commands run as that user.
#pragma once

#include <gtest/gtest.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.hpp"

namespace wpckpt::test {

// A user (with its own group and one supplementary group) that exists for
// the life of this object. Needs root and useradd; `ok()` says whether it
// was created.
class TestUser {
 public:
  TestUser() {
    const std::string tag = std::to_string(::getpid());
    name_ = "wpckpt-t" + tag;
    extra_group_ = "wpckpt-g" + tag;
    if (::geteuid() != 0) return;
    if (run_command({"/usr/sbin/groupadd", extra_group_}).exit_code != 0) return;
    made_group_ = true;
    if (run_command({"/usr/sbin/useradd", "--no-create-home", "--user-group", "--shell", "/bin/false", "--groups",
                     extra_group_, name_})
            .exit_code != 0)
      return;
    made_user_ = true;
    struct passwd* pw = ::getpwnam(name_.c_str());
    struct group* gr = ::getgrnam(extra_group_.c_str());
    if (!pw || !gr) return;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    extra_gid_ = gr->gr_gid;
  }
  ~TestUser() {
    if (made_user_) run_command({"/usr/sbin/userdel", name_});
    if (made_group_) run_command({"/usr/sbin/groupdel", extra_group_});
  }
  TestUser(const TestUser&) = delete;
  TestUser& operator=(const TestUser&) = delete;

  bool ok() const { return uid_ != 0; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  gid_t extra_gid() const { return extra_gid_; }
  // Prefix that runs a command as this user with its groups.
  std::vector<std::string> as_user() const {
    return {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_),
            "--init-groups", "--inh-caps=-all", "--"};
  }
  // A directory the user owns, inside `parent` (made traversable).
  std::filesystem::path own_dir(const std::filesystem::path& parent, const std::string& name) const {
    std::filesystem::permissions(parent, std::filesystem::perms::others_exec, std::filesystem::perm_options::add);
    std::filesystem::path dir = parent / name;
    std::filesystem::create_directory(dir);
    EXPECT_EQ(0, ::chown(dir.c_str(), uid_, gid_));
    return dir;
  }

 private:
  std::string name_, extra_group_;
  bool made_group_ = false, made_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0, extra_gid_ = 0;
};

// A copy of the wpckpt binary (and its agent) in `dir` with the file
// capabilities a user might give it; empty when setcap is not possible here.
inline std::string setcap_copy(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::permissions(dir, fs::perms::others_exec | fs::perms::others_read, fs::perm_options::add);
  const fs::path copy = dir / "wpckpt";
  fs::copy_file(wpckpt_binary(), copy, fs::copy_options::overwrite_existing);
  const fs::path agent = fs::path(wpckpt_binary()).parent_path() / "libwpckpt-agent.so";
  std::error_code ec;
  if (fs::exists(agent)) fs::copy_file(agent, dir / agent.filename(), fs::copy_options::overwrite_existing, ec);
  fs::permissions(copy, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  if (run_command({"/usr/sbin/setcap", "cap_checkpoint_restore,cap_sys_ptrace+ep", copy.string()}).exit_code != 0)
    return {};
  if (run_command({"/usr/sbin/getcap", copy.string()}).out.find("cap_sys_ptrace") == std::string::npos) return {};
  return copy.string();
}

// "State:" and "TracerPid:" of a process: not stopped and not traced.
inline bool running_untraced(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  return status.find("TracerPid:\t0\n") != std::string::npos && status.find("State:\tT") == std::string::npos &&
         status.find("State:\tt") == std::string::npos;
}

// The value of `key` in /proc/PID/status (or /proc/PID/task/TID/status).
inline std::string status_field(const std::string& status_path, const std::string& key) {
  const std::string status = read_file(status_path);
  size_t pos = status.find("\n" + key + ":");
  if (pos == std::string::npos) return {};
  size_t start = pos + key.size() + 2, end = status.find('\n', start);
  std::string v = status.substr(start, end - start);
  while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.erase(v.begin());
  return v;
}

}  // namespace wpckpt::test
