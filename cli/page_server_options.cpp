#include "cli/page_server_options.hpp"

#include <pwd.h>
#include <unistd.h>

namespace wpckpt::cli {

void add_page_server_options(CLI::App* verb, PageServerOptions& into, PageServerRole role) {
  const bool client = role != PageServerRole::Listen;
  if (role == PageServerRole::Send)
    verb->add_flag("--page-server", into.enabled,
                   "Send the image to `wpckpt page-server` at --address/--port; nothing is written here");
  if (role == PageServerRole::Read)
    verb->add_flag("--page-server", into.enabled,
                   "Read the chain from `wpckpt page-server --lazy` at --address/--port (-D names it there); "
                   "with --lazy, pages come over the network as the process touches them");
  verb->add_option("--address", into.address,
                   client ? "Address of the page server" : "Address to listen on (default: every address)");
  verb->add_option("--port", into.port, client ? "Port of the page server" : "TCP port to listen on (0: any free one)");
  verb->add_option("--secret-file", into.secret_file,
                   "The shared secret (same file on both hosts; default " + default_secret_file() + ")");
}

std::string default_secret_file() {
  // Once per run: every verb's help names it, and each lookup reads
  // nsswitch.conf and the passwd database (a pre-dump made six).
  static const std::string file = [] {
    const passwd* pw = ::getpwuid(::geteuid());
    std::string home = pw && pw->pw_dir ? pw->pw_dir : "/root";
    return home + "/.config/wpckpt/page-server.secret";
  }();
  return file;
}

Result<std::optional<net::PageServerTarget>> page_server_target(const PageServerOptions& opts) {
  if (!opts.enabled) {
    if (!opts.address.empty() || opts.port != 0)
      return make_error(EINVAL, "usage", "--address and --port need --page-server");
    return std::optional<net::PageServerTarget>();
  }
  if (opts.address.empty() || opts.port == 0)
    return make_error(EINVAL, "usage", "--page-server needs --address and --port")
        .with_hint("give where `wpckpt page-server` listens, e.g. --address 10.0.0.2 --port 1234");
  net::PageServerTarget t;
  t.server = net::Endpoint{opts.address, opts.port};
  t.secret_file = opts.secret_file.empty() ? default_secret_file() : opts.secret_file;
  return std::optional<net::PageServerTarget>(t);
}

}  // namespace wpckpt::cli
