// The Catch2 main shared by every rml test executable. Randomised tests draw their seed
// from Catch's --rng-seed (printed at start by the seed line below) so any failure replays.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  Catch::Session session;
  if (int status = session.applyCommandLine(argc, argv); status != 0) return status;
  if (session.configData().rngSeed == 0) session.configData().rngSeed = 20261127;
  const auto& data = session.configData();
  const bool listing = data.listTests || data.listTestNamesOnly || data.listTags || data.listReporters;
  if (!listing) std::fprintf(stderr, "rml tests: rng seed %u (replay with --rng-seed %u)\n", session.config().rngSeed(),
              session.config().rngSeed());
  return session.run();
}
