// A restored process runs with the credentials recorded in its image, never
// the restorer's (#10 item 2): root restores, with --allow-other-owner, the
// dump a real non-root user (created for the test) made of its own process,
// and every thread of the restored process has that user's ids, groups and
// (empty) capability sets; an image whose process.json claims more than its
// owner could have had (uid 0, root's group, capabilities; digests
// recomputed, as anyone can) is refused and nothing is created.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>

#include <fstream>
#include <iostream>

#include "dump-format/digest.hpp"
#include "dump-format/manifest.hpp"
#include "lib/state/process_state.hpp"
#include "tests/e2e/privilege_helpers.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kCredentialFields = {"Uid",    "Gid",    "Groups", "CapInh",    "CapPrm",
                                                    "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"};

std::map<std::string, std::string> credentials_of(const std::string& status_path) {
  std::map<std::string, std::string> out;
  for (const std::string& key : kCredentialFields) out[key] = status_field(status_path, key);
  return out;
}

std::vector<std::string> task_status_paths(pid_t pid) {
  std::vector<std::string> paths;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& e : fs::directory_iterator(dir)) paths.push_back((e.path() / "status").string());
  return paths;
}

// Rewrites process.json of `image` with `edit`, and the manifest's record of
// it (size, digest, checksum), as an attacker would; the files keep their owner.
template <typename Edit>
void craft(const fs::path& image, Edit edit) {
  const fs::path state_path = image / "process.json";
  std::string text = read_file(state_path);
  auto st = state::parse(std::as_bytes(std::span(text.data(), text.size())));
  ASSERT_TRUE(st) << st.error().message();
  edit(*st);
  auto serialized = state::serialize(*st);
  ASSERT_TRUE(serialized) << serialized.error().message();
  const std::string changed = *serialized;
  std::ofstream(state_path, std::ios::binary | std::ios::trunc) << changed;
  const std::string manifest_text = read_file(image / image::kManifestName);
  auto doc = image::parse_manifest(std::as_bytes(std::span(manifest_text.data(), manifest_text.size())), "manifest");
  ASSERT_TRUE(doc) << doc.error().message();
  doc->file_records["process.json"] =
      image::FileRecord{changed.size(), image::digest_bytes(std::as_bytes(std::span(changed.data(), changed.size())))};
  std::ofstream(image / image::kManifestName, std::ios::binary | std::ios::trunc) << image::encode_manifest(*doc);
}

// `wpckpt run -- zdtm_counter THREADS MIB` as `user`. It must not inherit
// this test's descriptors beyond 0-2 (ctest keeps its log open as fd 3):
// restore reopens every file as the image's owner, who may not open root's.
std::vector<std::string> counter_as(const TestUser& user, const std::string& threads, const std::string& mib) {
  std::vector<std::string> argv = user.as_user();
  for (const std::string& a : {std::string("/bin/sh"), std::string("-c"),
                               std::string("exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- \"$@\""), std::string("sh"),
                               wpckpt_binary(), std::string("run"), std::string("--"), workload("zdtm_counter"),
                               threads, mib})
    argv.push_back(a);
  return argv;
}

TEST(RestoreCredentials, AnotherUsersImageIsRestoredWithThatUsersCredentials) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user and to restore another user's image";
  TestUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)";
  TempDir dir;
  const fs::path home = user.own_dir(dir.path(), "home");
  const std::string out = (home / "out.txt").string();
  std::ofstream(out).close();
  ASSERT_EQ(0, ::chown(out.c_str(), user.uid(), user.gid()));

  // The user's own process, started and dumped by the user.
  ChildProcess proc = ChildProcess::start(counter_as(user, "2", "8"), {}, out);
  const pid_t pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);
  const auto before = credentials_of("/proc/" + std::to_string(pid) + "/status");
  ASSERT_EQ(before.at("Uid"), std::to_string(user.uid()) + "\t" + std::to_string(user.uid()) + "\t" +
                                  std::to_string(user.uid()) + "\t" + std::to_string(user.uid()));
  ASSERT_NE(before.at("Groups").find(std::to_string(user.extra_gid())), std::string::npos) << before.at("Groups");

  std::vector<std::string> dump = user.as_user();
  for (const std::string& a : {wpckpt_binary(), std::string("dump"), std::string("-t"), std::to_string(pid),
                               std::string("-D"), (home / "dump").string()})
    dump.push_back(a);
  auto d = run_command(dump, {}, std::chrono::seconds(120));
  if (d.exit_code != 0) {
    // An unprivileged dump can fail for reasons outside this test (descriptors
    // it may not reopen): root dumps, and the image is handed to the user as
    // the user's own dump would be.
    std::cout << "note: the user's own dump failed (" << d.err << "); dumping as root and chowning the image\n";
    auto r = run_wpckpt({"dump", "-t", std::to_string(pid), "-D", (home / "dump").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const fs::path& p : {home / "dump"}) ASSERT_EQ(0, ::chown(p.c_str(), user.uid(), user.gid()));
    for (const auto& e : fs::directory_iterator(home / "dump"))
      ASSERT_EQ(0, ::chown(e.path().c_str(), user.uid(), user.gid()));
  }
  proc.wait();
  ASSERT_TRUE(pid_gone(pid));
  struct stat st {};
  ASSERT_EQ(0, ::stat((home / "dump").c_str(), &st));
  ASSERT_EQ(st.st_uid, user.uid());
  ASSERT_EQ(0, system(("cp -a " + (home / "dump").string() + " " + (home / "pristine").string()).c_str()));

  // Without --allow-other-owner root refuses the user's image.
  auto refused = run_wpckpt({"restore", "-D", (home / "dump").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("not by the current user"), std::string::npos) << refused.err;

  {
    ChildProcess restore = start_restore(home / "dump", pid, {"--allow-other-owner"});
    ASSERT_TRUE(restored(pid));
    KillByPid cleanup{pid};
    for (const std::string& path : task_status_paths(pid)) {
      const auto after = credentials_of(path);
      for (const std::string& key : kCredentialFields) EXPECT_EQ(after.at(key), before.at(key)) << path << " " << key;
    }
    EXPECT_EQ(task_status_paths(pid).size(), 3u);
    // It still works: the workload checks itself after SIGUSR1.
    ASSERT_EQ(::kill(pid, SIGUSR1), 0);
    EXPECT_EQ(exit_code_of(restore.wait()), 0);
    EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
    cleanup.pid = -1;
  }
  ASSERT_TRUE(wait_until([&] { return pid_gone(pid); }));

  // Crafted images: more than the user could have had.
  struct Claim {
    const char* name;
    std::function<void(state::ProcessState&)> edit;
    std::string message;
  };
  // A file only root may write, with the identity a crafted image would
  // record for it (anyone can stat it).
  const fs::path secret = dir.path() / "root-only";
  std::ofstream(secret) << "root's\n";
  ASSERT_EQ(0, ::chmod(secret.c_str(), 0600));
  struct stat secret_st {};
  ASSERT_EQ(0, ::stat(secret.c_str(), &secret_st));
  const std::vector<Claim> claims = {
      {"uid0", [](state::ProcessState& s) { s.creds.uid = s.creds.euid = s.creds.suid = s.creds.fsuid = 0; },
       "records uid 0 in an image owned by uid " + std::to_string(user.uid())},
      {"gid0", [](state::ProcessState& s) { s.creds.groups.push_back(0); }, "records gid 0, not a group of uid"},
      {"caps", [](state::ProcessState& s) { s.creds.cap_effective = s.creds.cap_permitted = 1ull << 21; },
       "capabilities 0000000000200000 for an unprivileged user"},
      // The user's own credentials, but its stdout now names root's file:
      // restore opens it as the user, which the kernel refuses.
      {"redirect",
       [&](state::ProcessState& s) {
         for (state::FdState& f : s.fds) {
           if (f.fd != 1 || !f.file) continue;
           f.file->path = secret.string();
           f.file->dev = secret_st.st_dev;
           f.file->inode = secret_st.st_ino;
           f.file->size = static_cast<uint64_t>(secret_st.st_size);
           f.file->mtime_ns = static_cast<int64_t>(secret_st.st_mtim.tv_sec) * 1000000000 + secret_st.st_mtim.tv_nsec;
           f.pos = 0;
         }
       },
       "reopen " + secret.string()},
  };
  for (const Claim& claim : claims) {
    const fs::path crafted = home / claim.name;
    ASSERT_EQ(0, system(("cp -a " + (home / "pristine").string() + " " + crafted.string()).c_str()));
    craft(crafted, claim.edit);
    if (HasFatalFailure()) return;
    auto r = run_wpckpt({"restore", "-D", crafted.string(), "--allow-other-owner"});
    EXPECT_NE(r.exit_code, 0) << claim.name;
    EXPECT_NE(r.err.find(claim.message), std::string::npos) << claim.name << ": " << r.err;
    if (std::string(claim.name) == "redirect") {
      EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("restore refuses what its owner could not do"), std::string::npos) << r.err;
    }
    EXPECT_TRUE(pid_gone(pid)) << claim.name << ": a process was created";
    KillByPid cleanup{pid_gone(pid) ? -1 : pid};
  }
  EXPECT_EQ(read_file(secret), "root's\n");
}

// A user restores its own image with a setcap copy of wpckpt (the setup
// restore's hint suggests): the copy's file capabilities must not reach the
// restored process.
TEST(RestoreCredentials, ASetcapCopysCapabilitiesDoNotReachTheRestoredProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a user and setcap";
  TestUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user (useradd/groupadd)";
  TempDir bin;
  const std::string copy = setcap_copy(bin.path());
  if (copy.empty()) GTEST_SKIP() << "setcap is not possible here (no libcap2-bin or no xattrs)";
  TempDir dir;
  const fs::path home = user.own_dir(dir.path(), "home");
  const std::string out = (home / "out.txt").string();
  std::ofstream(out).close();
  ASSERT_EQ(0, ::chown(out.c_str(), user.uid(), user.gid()));
  ChildProcess proc = ChildProcess::start(counter_as(user, "1", "4"), {}, out);
  const pid_t pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);
  const auto before = credentials_of("/proc/" + std::to_string(pid) + "/status");
  // Root dumps and hands the image to the user (the user's own dump is not what this tests).
  auto d = run_wpckpt({"dump", "-t", std::to_string(pid), "-D", (home / "dump").string()});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  proc.wait();
  ASSERT_EQ(0, ::chown((home / "dump").c_str(), user.uid(), user.gid()));
  for (const auto& e : fs::directory_iterator(home / "dump"))
    ASSERT_EQ(0, ::chown(e.path().c_str(), user.uid(), user.gid()));

  std::vector<std::string> restore_argv = user.as_user();
  for (const std::string& a : {copy, std::string("restore"), std::string("-D"), (home / "dump").string()})
    restore_argv.push_back(a);
  KillByPid cleanup{pid};
  ChildProcess restore = ChildProcess::start(restore_argv);
  // restored() compares with the test's wpckpt binary, not with the copy.
  auto complete = [&] {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    return !ec && exe == fs::canonical(workload("zdtm_counter")) && restored(pid);
  };
  ASSERT_TRUE(wait_until(complete)) << "the user could not restore its own image with the setcap copy";
  for (const std::string& path : task_status_paths(pid)) {
    const auto after = credentials_of(path);
    for (const std::string& key : kCredentialFields) EXPECT_EQ(after.at(key), before.at(key)) << path << " " << key;
  }
  EXPECT_EQ(status_field("/proc/" + std::to_string(pid) + "/status", "CapPrm"), "0000000000000000");
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(restore.wait()), 0);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
}

}  // namespace
}  // namespace wpckpt::test
