"""fuzz_target: one libFuzzer target, replayed as a test and built for fuzzing."""

def fuzz_target(name, deps, srcs = []):
    """Declares a fuzz target from NAME_fuzz.c and its corpus corpus/NAME.

    NAME_replay is a cc_test: the target's source with replay_main.c, run
    over every file of corpus/NAME (under --config=asan: ASan and UBSan).
    NAME_fuzzer is the target without a main, for tools/fuzz.sh to link with
    libFuzzer (-fsanitize=fuzzer); "manual", as a normal build cannot link it.

    Args:
      name: the target's name (NAME_fuzz.c holds LLVMFuzzerTestOneInput).
      deps: the libraries it calls.
      srcs: more sources or private headers it needs.
    """
    target_srcs = ["%s_fuzz.c" % name, "fuzz_util.h"] + srcs
    native.cc_test(
        name = name + "_replay",
        size = "small",
        srcs = target_srcs + ["replay_main.c"],
        args = ["fuzz/corpus/" + name],
        data = native.glob(["corpus/%s/*" % name]),
        deps = deps,
    )
    native.cc_binary(
        name = name + "_fuzzer",
        srcs = target_srcs,
        tags = ["manual"],
        deps = deps,
    )
