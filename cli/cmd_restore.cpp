// wpckpt restore: Bring the process back from an image chain (restore_run.hpp).
#include <memory>

#include "cli/commands.hpp"
#include "cli/criu_compat.hpp"
#include "cli/log_file.hpp"
#include "cli/page_server_options.hpp"
#include "cli/restore_run.hpp"

namespace wpckpt::cli {

void add_restore_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RestoreOptions>();
  CLI::App* sub = app.add_subcommand("restore", "Bring the process back from an image chain");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory of a dump")->required();
  sub->add_flag("-d,--restore-detached", opts->detached, "Detach: print the pid and exit");
  sub->add_flag("--lazy,--lazy-pages", opts->lazy, "Run at once; anonymous memory is served on demand and copied in behind (userfaultfd)");
  sub->add_flag("--allow-other-owner", opts->allow_other_owner, "Restore images owned by another user");
  sub->add_option("--pidfile", opts->pidfile, "Write the restored process's pid to FILE (a new file)");
  auto* tcp_established =
      sub->add_flag("--tcp-established", opts->tcp_established, "Restore established TCP connections (TCP repair; root)");
  sub->add_flag("--tcp-close", opts->tcp_close, "Restore established TCP connections as closed sockets")
      ->excludes(tcp_established);
  // CRIU wants these on restore as well; here the image says what the dump
  // took, and all of it is restored.
  add_ignored_criu_flag(sub, "--file-locks",
                        "the file locks the dump recorded (its --file-locks) are always taken again");
  add_ignored_criu_flag(sub, "--ext-unix-sk",
                        "sockets the dump recorded as external (its --ext-unix-sk) are always reconnected by name");
  add_criu_options(sub, opts->criu,
                   "Give the process this terminal in place of the one it had on fd 0-2; refused if wpckpt's "
                   "fd 0-2 is not a terminal",
                   false);
  add_network_lock_option(sub, opts->criu);
  add_page_server_options(sub, opts->page_server, PageServerRole::Read);
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] {
    // With --page-server, -D names the chain on the server: the log goes here.
    const std::string log_dir = opts->page_server.enabled ? "." : opts->images_dir;
    exit_code = run_with_log_file(log_dir, opts->criu.log_file, LogFile::ImagesDir::Existing, opts->json,
                                  [&] { return run_restore(*opts); });
  });
}

}  // namespace wpckpt::cli
