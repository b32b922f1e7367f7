// The client side options of a page server, CRIU's names where CRIU has them:
// --page-server --address ADDR --port N, plus --secret-file (the shared
// secret, lib/net/secret_file.hpp; by default the one `wpckpt page-server
// --new-secret` writes without a path, so that CRIU scripts run unchanged).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "cli/image_paths.hpp"
#include "lib/base/result.hpp"
#include "lib/net/remote_sink.hpp"

namespace wpckpt::cli {

struct PageServerOptions {
  bool enabled = false;
  std::string address;
  uint16_t port = 0;
  std::string secret_file;
};

// Which side of a page server a verb is: the server itself, a verb that
// sends it images, or a restore that reads a chain from it.
enum class PageServerRole { Listen, Send, Read };
// --address, --port, --secret-file; for a client, also --page-server.
void add_page_server_options(CLI::App* verb, PageServerOptions& into, PageServerRole role);

// <home of the effective user>/.config/wpckpt/page-server.secret (from the
// password database, not $HOME: the environment is not trusted).
std::string default_secret_file();

// The target of a client (nullopt without --page-server); refuses a missing
// address or port.
Result<std::optional<net::PageServerTarget>> page_server_target(const PageServerOptions& opts);

// Where a pre-dump or dump request writes (req.page_server) and which parent
// it names (req.prev_images_dir, see parent_image()).
template <typename Request>
Result<void> set_image_destination(Request& req, const std::string& images_dir, const std::string& prev,
                                   const PageServerOptions& opts) {
  WPCKPT_TRY_ASSIGN(req.page_server, page_server_target(opts));
  WPCKPT_TRY_ASSIGN(req.prev_images_dir, parent_image(images_dir, prev, req.page_server.has_value()));
  return ok();
}

}  // namespace wpckpt::cli
