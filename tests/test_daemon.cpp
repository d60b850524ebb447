// The node as its users run it: `patchswarm node` as a daemon with a control
// socket, driven by the CLI and by raw JSON lines, as separate processes on
// loopback. Pause/resume, SIGTERM and restart, the on-complete hook, quota,
// reload, metrics.
//
// Most tests start the device daemon first and let the origin bootstrap from
// it; the `fetch --daemon` test uses the everyday order instead (the daemon is
// already connected to the holder when the patch is added).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/bitfield.hpp"
#include "node/control.hpp"
#include "node/daemon.hpp"
#include "daemon_support.hpp"
#include "support.hpp"
#include "transfer/local_server.hpp"

using namespace ps;
using namespace ps::test;
using json = nlohmann::json;


TEST_CASE("daemon: control socket is 0600 in a 0700 folder and an open folder, a non-socket path or a live socket is refused") {
    TempDir d("ps-ctl");
    transfer::Loop loop;
    auto echo = [](std::string_view line) { return "echo " + std::string(line); };

    // Created owner-only, and the folder too.
    std::string path = d / "run/ctl.sock";
    auto srv = transfer::LocalServer::start(loop, path, echo);
    REQUIRE_MESSAGE(srv, srv.error());
    struct stat st {};
    REQUIRE(::stat((d / "run").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    // A second server on a live socket: refused, and the first keeps its socket.
    auto twice = transfer::LocalServer::start(loop, path, echo);
    REQUIRE(!twice);
    CHECK_MESSAGE(twice.error().find("another process is listening") != std::string::npos, twice.error());
    CHECK(fs::exists(path));
    srv->reset();
    CHECK(!fs::exists(path));  // unlinked on close

    // A folder that others may enter is refused, not chmod-ed behind the user's back.
    fs::create_directories(d / "open");
    ::chmod((d / "open").c_str(), 0755);
    auto open = transfer::LocalServer::start(loop, d / "open/ctl.sock", echo);
    REQUIRE(!open);
    CHECK_MESSAGE(open.error().find("has mode 0755; it must be 0700") != std::string::npos, open.error());
    REQUIRE(::stat((d / "open").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);

    // Something that is not a socket at the path is refused and left alone.
    fs::create_directories(d / "priv");
    ::chmod((d / "priv").c_str(), 0700);
    std::ofstream(d / "priv/ctl.sock") << "not a socket";
    auto file = transfer::LocalServer::start(loop, d / "priv/ctl.sock", echo);
    REQUIRE(!file);
    CHECK_MESSAGE(file.error().find("exists and is not a socket") != std::string::npos, file.error());
    CHECK(slurp(d / "priv/ctl.sock") == "not a socket");

    // A stale socket (its process gone) is replaced, with the right mode.
    std::string stale = d / "priv/stale.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, stale.c_str(), stale.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
    ::chmod(stale.c_str(), 0666);
    auto replaced = transfer::LocalServer::start(loop, stale, echo);
    REQUIRE_MESSAGE(replaced, replaced.error());
    REQUIRE(::lstat(stale.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);

    // The daemon's own socket, through the CLI: same modes, and a folder with
    // wrong modes stops start-up naming the setting.
    auto p = make_patch(d, 1000, 1);
    Reaper reaper;
    Proc dev = spawn(d, "dev", device_args(d, p, "dev"));
    reaper.procs.push_back(&dev);
    auto line = ready(dev);
    std::string sock = field(line, "control");
    CHECK(sock == d / "dev/run/control.sock");
    REQUIRE(::stat((d / "dev/run").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::lstat(sock.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    // A second daemon on the same data folder stops at the live socket.
    auto second = run_cli(d, device_args(d, p, "dev"));
    CHECK(second.code != 0);
    CHECK_MESSAGE(second.err.find("--control: ") != std::string::npos, second.err);  // named as the option that sets it
    CHECK_MESSAGE(second.err.find("another process is listening") != std::string::npos, second.err);
    ::kill(dev.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
    CHECK(!fs::exists(sock));

    ::chmod((d / "dev/run").c_str(), 0750);
    auto wrong = run_cli(d, device_args(d, p, "dev"));
    CHECK(wrong.code != 0);
    CHECK_MESSAGE(wrong.err.find("--control: control socket folder") != std::string::npos, wrong.err);
    CHECK_MESSAGE(wrong.err.find("mode 0750") != std::string::npos, wrong.err);
}

TEST_CASE("daemon: control lines are bounded and a bad request gets an ok=false error and the connection stays usable") {
    TempDir d("ps-ctl");
    transfer::Loop loop;
    transfer::LocalServer::Limits lim;
    lim.max_line = 1024;
    lim.overflow_reply = node::control::error_reply("request line longer than 1024 bytes");
    auto srv = transfer::LocalServer::start(
        loop, d / "run/c.sock",
        [](std::string_view line) {
            auto r = node::control::parse_request(line);
            return r ? std::string("{\"v\":1,\"ok\":true,\"cmd\":\"") + r->cmd + "\"}" : node::control::error_reply(r.error());
        },
        lim);
    REQUIRE(srv);
    std::vector<json> replies;
    std::string overflow_reply;
    bool closed_after_overflow = false;
    std::atomic<bool> done{false};
    std::thread client([&] {
        auto c = node::control::Client::connect(d / "run/c.sock", 5'000);
        if (c) {
            for (std::string req : {R"({"v":1,"cmd":"status"})", R"({"v":2,"cmd":"status"})", R"({"v":1,"cmd":"fly"})",
                                    R"({"v":1,"cmd":"pause"})", R"({"v":1,"cmd":"pause","patch":7})", "not json",
                                    R"({"v":1,"cmd":"list"})"})
                if (auto r = c->call(req)) replies.push_back(json::parse(*r));
            auto big = c->call(std::string(2000, 'x'));
            if (big) overflow_reply = *big;
            closed_after_overflow = !c->call(R"({"v":1,"cmd":"list"})");
        }
        done = true;
    });
    run_until(loop, [&] { return done.load(); }, 10'000);
    client.join();
    REQUIRE(replies.size() == 7);
    CHECK(replies[0]["ok"] == true);
    CHECK(replies[1]["ok"] == false);
    CHECK(replies[1]["error"].get<std::string>().find("unsupported protocol version 2") != std::string::npos);
    CHECK(replies[2]["error"] == "unknown command 'fly'");
    CHECK(replies[3]["error"] == "command 'pause' needs argument 'patch'");
    CHECK(replies[4]["error"] == "argument 'patch' must be a string");
    CHECK(replies[5]["error"] == "request is not valid JSON");
    CHECK(replies[6]["cmd"] == "list");  // still usable after errors
    CHECK(json::parse(overflow_reply)["error"] == "request line longer than 1024 bytes");
    CHECK(closed_after_overflow);

    CHECK(!node::control::parse_request(R"({"v":1,"cmd":"status","patch":[[[[[["x"]]]]]]})"));
    CHECK(!node::control::parse_request(std::string(node::control::kMaxRequestLine + 1, ' ')));
    // Error replies name the kind of failure in "code" for callers that branch.
    using namespace node::control;
    auto plain = nlohmann::json::parse(error_reply("x"));
    CHECK(plain == nlohmann::json{{"v", 1}, {"ok", false}, {"error", "x"}});  // no "code" when none is given
    auto coded = nlohmann::json::parse(error_reply("y", kErrRollback, {{"id", "ab"}}));
    CHECK(coded["code"] == "rollback");
    CHECK(coded["id"] == "ab");
    for (int c : {kErrAlreadyHere, kErrRollback}) CHECK(code_from_name(code_name(c)) == c);
    CHECK(code_from_name("nonsense") == kErrNone);
    CHECK(std::string(code_name(kErrNone)).empty());
}

TEST_CASE("daemon: a control reply may come later, a client's lines are answered in order, and a client gone meanwhile is no harm") {
    TempDir d("ps-ctl");
    transfer::Loop loop;
    transfer::Timer later(loop);
    std::vector<transfer::LocalServer::Respond> waiting;  // "slow" lines, answered by the timer
    std::vector<std::string> seen;
    auto srv = transfer::LocalServer::start(
        loop, d / "run/c.sock",
        [&](std::string_view line, transfer::LocalServer::Respond respond) {
            seen.emplace_back(line);
            if (line.rfind("slow", 0) == 0) return waiting.push_back(std::move(respond));
            respond("at once " + std::string(line));
        },
        transfer::LocalServer::Limits{});
    REQUIRE(srv);
    later.start(300, 300, [&] {
        for (auto& r : waiting) r("later");
        waiting.clear();
    });
    std::vector<std::string> replies;
    std::atomic<bool> done{false};
    std::thread client([&] {
        {  // A client that asks and leaves before the answer.
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::string path = d / "run/c.sock";
            std::memcpy(a.sun_path, path.c_str(), path.size());
            int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) (void)!::write(fd, "slow-then-gone\n", 15);
            ::close(fd);
        }
        // Two lines written at once: the second waits for the first's late answer.
        auto c = node::control::Client::connect(d / "run/c.sock", 5'000);
        if (c) {
            if (auto r = c->call("slow-1\nquick-2")) replies.push_back(*r);
            if (auto r = c->call("")) replies.push_back(*r);  // reads the reply to quick-2 (and asks an empty line)
            if (auto r = c->call("quick-3")) replies.push_back(*r);  // reads the reply to the empty line
        }
        done = true;
    });
    run_until(loop, [&] { return done.load(); }, 10'000);
    client.join();
    // A client that keeps sending while its request waits is dropped, not buffered without end.
    // Its request is never answered (the timer is stopped): without the bound
    // the client would wait for its 4 s timeout instead of being hung up on.
    later.stop();
    std::atomic<bool> flood_done{false};
    bool flood_dropped = false;
    double flood_secs = 0;
    std::thread flooder([&] {
        auto c = node::control::Client::connect(d / "run/c.sock", 4'000);
        auto t0 = std::chrono::steady_clock::now();
        if (c) {
            std::string big = "slow-flood\n" + std::string(200'000, 'x');  // > 2 x the 64 KiB line limit
            flood_dropped = !c->call(big);
        }
        flood_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        flood_done = true;
    });
    run_until(loop, [&] { return flood_done.load(); }, 10'000);
    flooder.join();
    CHECK(flood_dropped);
    CHECK(flood_secs < 2.0);
    REQUIRE(replies.size() == 3);
    CHECK(replies[0] == "later");
    CHECK(replies[1] == "at once quick-2");
    CHECK(replies[2] == "at once ");
    CHECK(std::find(seen.begin(), seen.end(), "slow-then-gone") != seen.end());
}

TEST_CASE("daemon: pause and resume through the control socket, observed in status") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 8 << 20, 11);
    Reaper reaper;
    auto args = device_args(d, p, "dev");
    args.insert(args.end(), {"--download-limit", "2M"});
    Proc dev = spawn(d, "dev", args);
    reaper.procs.push_back(&dev);
    auto line = ready(dev);
    std::string sock = field(line, "control");
    // Through the CLI, by file; relative paths are made absolute by the client.
    auto add = run_cli(d, {"add", "--socket", sock, "--manifest", p.manifest, "--out", d / "out.bin"});
    REQUIRE_MESSAGE(add.code == 0, add.err);
    CHECK(add.out.find("added ") == 0);
    // A second add is refused with a code the client branches on, not words.
    auto again = ctl(sock, "add", {{"manifest", p.manifest}, {"out", d / "out2.bin"}});
    CHECK_FALSE(again.value("ok", true));
    CHECK(again.value("code", "") == "already_here");
    CHECK(add.out.find(again.value("id", "?")) != std::string::npos);
    auto twice = run_cli(d, {"add", "--socket", sock, "--manifest", p.manifest, "--out", d / "out.bin"});
    CHECK(twice.code != 0);
    CHECK(twice.err.find("is already here") != std::string::npos);
    Proc origin = start_origin(d, p, field(line, "dht"));
    reaper.procs.push_back(&origin);
    ready(origin);

    REQUIRE(wait_for([&] { return patch_status(sock).value("held", 0) >= 2; }, 15'000));
    auto paused = run_cli(d, {"pause", "--socket", sock, "p"});  // by patch name
    REQUIRE_MESSAGE(paused.code == 0, paused.err);
    auto st = patch_status(sock);
    CHECK(st["state"] == "paused");
    std::this_thread::sleep_for(std::chrono::milliseconds(800));  // requests already sent may land
    int held = patch_status(sock).value("held", 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(patch_status(sock).value("held", -1) == held);
    CHECK(held < 8);
    // Pausing persists (a restart keeps it paused).
    CHECK(slurp(d / ("dev/" + st.value("id", "") + "/job")).find("state=paused") != std::string::npos);

    auto resumed = ctl(sock, "resume", {{"patch", st.value("id", "").substr(0, 10)}});  // by id prefix
    CHECK_MESSAGE(resumed.value("ok", false), resumed.dump());
    REQUIRE(wait_for([&] { return patch_status(sock).value("state", "") == "complete"; }, 15'000));
    CHECK(slurp(d / "out.bin") == slurp(p.file));
    auto human = run_cli(d, {"status", "--socket", sock});
    CHECK(human.code == 0);
    CHECK(human.out.find("complete") != std::string::npos);
    CHECK(ctl(sock, "pause", {{"patch", "nosuch"}})["error"] == "no patch matches 'nosuch'");

    ::kill(dev.pid, SIGTERM);
    ::kill(origin.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
    CHECK(finish(origin).code == 0);
}

TEST_CASE("daemon: SIGTERM mid-transfer stops cleanly and the restarted daemon resumes the download and completes it") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 8 << 20, 12);
    Reaper reaper;
    auto args = device_args(d, p, "dev");
    args.insert(args.end(), {"--download-limit", "2M"});
    Proc dev = spawn(d, "dev", args);
    reaper.procs.push_back(&dev);
    auto line = ready(dev);
    std::string sock = field(line, "control");
    auto added = ctl(sock, "add", {{"manifest", p.manifest}, {"out", d / "out.bin"}});
    REQUIRE_MESSAGE(added.value("ok", false), added.dump());
    std::string id = added["id"];
    Proc origin = start_origin(d, p, field(line, "dht"));
    reaper.procs.push_back(&origin);
    auto oline = ready(origin);

    REQUIRE(wait_for([&] { return patch_status(sock).value("held", 0) >= 3; }, 15'000));
    ::kill(dev.pid, SIGTERM);
    auto r = finish(dev);
    CHECK(r.code == 0);  // a clean stop, not a signal death
    CHECK(r.err.find("event=stopped") != std::string::npos);
    CHECK(!fs::exists(sock));
    auto job = slurp(d / ("dev/" + id + "/job"));
    CHECK(job.find("state=downloading") != std::string::npos);
    CHECK(fs::exists(d / ("dev/" + id + "/manifest")));
    CHECK(!fs::exists(d / "out.bin"));
    // The store was flushed: what was held is marked on disk.
    auto have = Bitfield::from_bytes(as_bytes(slurp(d / ("dev/" + id + "/have"))), 8);
    REQUIRE(have);
    auto held_at_stop = have->count();
    CHECK(held_at_stop >= 3);
    CHECK(held_at_stop < 8);

    // Restart: no `add`; the daemon finds the download in its data folder.
    args.insert(args.end(), {"--bootstrap", "127.0.0.1:" + field(oline, "dht")});
    Proc again = spawn(d, "dev2", args);
    reaper.procs.push_back(&again);
    ready(again);
    auto first = patch_status(sock);
    CHECK(first.value("id", "") == id);
    CHECK(first.value("held", 0) >= static_cast<int>(held_at_stop));
    REQUIRE(wait_for([&] { return patch_status(sock).value("state", "") == "complete"; }, 15'000));
    CHECK(slurp(d / "out.bin") == slurp(p.file));
    // Only what was missing was fetched again.
    auto verified = patch_status(sock).value("segments_verified", 99u);
    CHECK(verified < 8);
    CHECK(verified + held_at_stop >= 8);
    CHECK(slurp(again.err).find("event=resumed") != std::string::npos);

    ::kill(again.pid, SIGTERM);
    ::kill(origin.pid, SIGTERM);
    CHECK(finish(again).code == 0);
    CHECK(finish(origin).code == 0);
}

TEST_CASE("daemon: `fetch --daemon` shows progress and the on-complete hook gets the verified file") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 3 << 20, 13);
    std::string hook = d / "hook.sh";
    std::ofstream(hook) << "#!/bin/sh\ncp \"$1\" '" << d / "hooked.bin" << "'\necho \"$PATCHSWARM_PATCH_NAME $PATCHSWARM_PATCH_VERSION\" > '"
                        << d / "hook.env" << "'\n";
    ::chmod(hook.c_str(), 0755);
    Reaper reaper;
    Proc origin = start_origin(d, p, "");
    reaper.procs.push_back(&origin);
    auto oline = ready(origin);
    auto args = device_args(d, p, "dev");
    args.insert(args.end(), {"--on-complete", hook, "--bootstrap", "127.0.0.1:" + field(oline, "dht")});
    Proc dev = spawn(d, "dev", args);
    reaper.procs.push_back(&dev);
    std::string sock = field(ready(dev), "control");
    // Connected (gossip) before the patch is added: the holder's bitfield must still arrive.
    REQUIRE(wait_for([&] { return ctl(sock, "status")["node"].value("peers", 0) >= 1; }, 10'000));
    Proc fetch = spawn(d, "fetch", {"fetch", "--daemon", sock, "--manifest", p.manifest, "--out", d / "out bin", "--timeout", "15"});
    reaper.procs.push_back(&fetch);

    auto r = finish(fetch);
    CHECK_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.find("progress ") != std::string::npos);  // plain lines: stdout is not a terminal
    CHECK(r.out.find(" of 3.0 MiB rate ") != std::string::npos);  // bytes, from the status's held_bytes
    CHECK(r.out.find("progress 100.0% 3.0 MiB of 3.0 MiB") != std::string::npos);
    CHECK(r.out.find("complete " + d / "out bin") != std::string::npos);
    REQUIRE(wait_for([&] { return fs::exists(d / "hook.env"); }, 5'000));
    CHECK(slurp(d / "hooked.bin") == slurp(p.file));  // a path with a space arrives as one argument
    CHECK(slurp(d / "hook.env") == "p 1\n");
    REQUIRE(wait_for([&] { return patch_status(sock).value("hook", "") == "exit 0"; }, 5'000));
    CHECK(slurp(dev.err).find("event=hook_done") != std::string::npos);

    ::kill(dev.pid, SIGTERM);
    ::kill(origin.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
    CHECK(finish(origin).code == 0);
}

TEST_CASE("daemon: a download that cannot verify never runs the on-complete hook") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 3 << 20, 14);
    // The only source holds a copy with one segment corrupted: it offers the
    // two that verify; the third never arrives, so the patch never completes.
    std::string bad = d / "bad.bin";
    fs::copy_file(p.file, bad);
    flip_byte(bad, (1 << 20) + 77);
    std::string hook = d / "hook.sh";
    std::ofstream(hook) << "#!/bin/sh\ntouch '" << d / "hook-ran" << "'\n";
    ::chmod(hook.c_str(), 0755);
    Reaper reaper;
    auto args = device_args(d, p, "dev");
    args.insert(args.end(), {"--on-complete", hook});
    Proc dev = spawn(d, "dev", args);
    reaper.procs.push_back(&dev);
    auto line = ready(dev);
    std::string sock = field(line, "control");
    REQUIRE(ctl(sock, "add", {{"manifest", p.manifest}, {"out", d / "out.bin"}}).value("ok", false));
    Proc origin = start_origin(d, p, field(line, "dht"), bad);
    reaper.procs.push_back(&origin);
    ready(origin);
    REQUIRE(wait_for([&] { return patch_status(sock).value("held", 0) == 2; }, 10'000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    auto st = patch_status(sock);
    CHECK(st["state"] == "downloading");
    CHECK(st["held"] == 2);
    CHECK(!st.contains("hook"));
    CHECK(!fs::exists(d / "hook-ran"));
    CHECK(!fs::exists(d / "out.bin"));

    ::kill(dev.pid, SIGTERM);
    ::kill(origin.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
    CHECK(finish(origin).code == 0);
}

TEST_CASE("daemon: the hook runner checks the file against the manifest first and passes the path as one argument") {
    REQUIRE(crypto::init());
    TempDir d("ps-hook");
    auto op = crypto::generate_keypair();
    std::string file = d / "patch file.bin";
    write_random_file(file, (2 << 20) + 5, 3);
    auto vm = publish(file, op, "ims", 7);
    std::string hook = d / "hook.sh";
    std::ofstream(hook) << "#!/bin/sh\nprintf '%s|%s|%s' \"$#\" \"$1\" \"$PATCHSWARM_MANIFEST_ID\" > '" << d / "args" << "'\nexit 3\n";
    ::chmod(hook.c_str(), 0755);

    transfer::Loop loop;
    node::HookRunner runner(loop);
    std::optional<std::pair<bool, std::string>> good, corrupt, missing;
    runner.run({hook}, vm, file, [&](bool ok, const std::string& o) { good = {ok, o}; });
    REQUIRE(run_until(loop, [&] { return good.has_value(); }, 10'000));
    CHECK(!good->first);  // the hook exited 3
    CHECK(good->second == "exit 3");
    CHECK(slurp(d / "args") == "1|" + file + "|" + to_hex(vm.id));

    fs::remove(d / "args");
    flip_byte(file, 1 << 20);
    runner.run({hook}, vm, file, [&](bool ok, const std::string& o) { corrupt = {ok, o}; });
    REQUIRE(run_until(loop, [&] { return corrupt.has_value(); }, 10'000));
    CHECK(!corrupt->first);
    CHECK_MESSAGE(corrupt->second.find("not run: ") == 0, corrupt->second);
    CHECK_MESSAGE(corrupt->second.find("segment 1 does not match") != std::string::npos, corrupt->second);
    CHECK(!fs::exists(d / "args"));  // never started

    runner.run({hook}, vm, d / "gone.bin", [&](bool ok, const std::string& o) { missing = {ok, o}; });
    REQUIRE(run_until(loop, [&] { return missing.has_value(); }, 10'000));
    CHECK(!missing->first);
    CHECK(!fs::exists(d / "args"));
}

TEST_CASE("daemon: the quota refuses a download that would not fit, with a clear error") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 3 << 20, 15);
    Reaper reaper;
    auto args = device_args(d, p, "dev");
    args.insert(args.end(), {"--quota", "2M"});
    Proc dev = spawn(d, "dev", args);
    reaper.procs.push_back(&dev);
    auto line = ready(dev);
    auto r = run_cli(d, {"add", "--data", d / "dev", "--manifest", p.manifest, "--out", d / "out.bin"});
    CHECK(r.code != 0);
    CHECK_MESSAGE(r.err.find("quota: p v1") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("3145728 bytes") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("2097152-byte quota (limits.quota)") != std::string::npos, r.err);
    CHECK(ctl(field(line, "control"), "list")["patches"].empty());
    // The daemon speaks version 1 only, and says so.
    auto v2 = raw_line(field(line, "control"), R"({"v":2,"cmd":"list"})");
    CHECK(v2["ok"] == false);
    CHECK(v2["v"] == 1);
    CHECK(v2["error"] == "unsupported protocol version 2 (this node speaks 1)");
    int folders = 0;
    for (auto& e : fs::directory_iterator(d / "dev"))
        if (e.is_directory() && e.path().filename() != "run") ++folders;
    CHECK(folders == 0);  // nothing persisted
    ::kill(dev.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
}

TEST_CASE("daemon: SIGHUP and `reload` re-read the config file's limits and a broken file changes nothing") {
    TempDir d("ps-daemon");
    auto p = make_patch(d, 1000, 16);
    auto write_cfg = [&](const std::string& download) {
        std::ofstream(d / "node.toml") << "[node]\ndata = \"" << d / "dev" << "\"\nrole = \"peer\"\ndomain = \"d1\"\n"
                                       << "trust = \"" << p.pub << "\"\n[log]\nlevel = \"info\"\n[limits]\nupload = \"1M\"\ndownload = "
                                       << download << "\n";
    };
    write_cfg("\"1M\"");
    Reaper reaper;
    Proc dev = spawn(d, "dev", {"node", "--config", d / "node.toml", "--upload-limit", "5M"});
    reaper.procs.push_back(&dev);
    auto sock = field(ready(dev), "control");
    auto limits = [&] {
        auto s = ctl(sock, "status");
        return std::make_pair(s["node"].value("download_limit", 0ull), s["node"].value("upload_limit", 0ull));
    };
    CHECK(limits() == std::make_pair(1ull << 20, 5ull << 20));  // the command line wins
    write_cfg("\"3M\"");
    ::kill(dev.pid, SIGHUP);
    CHECK(wait_for([&] { return limits().first == 3ull << 20; }, 5'000));
    CHECK(limits().second == 5ull << 20);  // still overridden after a reload

    write_cfg("\"fast\"");
    auto r = ctl(sock, "reload");
    CHECK(r["ok"] == false);
    CHECK_MESSAGE(r.value("error", "").find("limits.download: 'fast' is not a rate") != std::string::npos, r.dump());
    CHECK(limits().first == 3ull << 20);
    write_cfg("0");
    auto cli = run_cli(d, {"reload", "--socket", sock});
    CHECK(cli.code == 0);
    CHECK(limits().first == 0);

    ::kill(dev.pid, SIGTERM);
    CHECK(finish(dev).code == 0);
    CHECK(slurp(dev.err).find("event=reloaded") != std::string::npos);
}

namespace {

// A device with a metrics endpoint that has fetched a 3 MiB patch from an origin.
struct MetricsRun {
    TempDir d{"ps-daemon"};
    Patch p = make_patch(d, 3 << 20, 17);
    std::optional<Proc> dev, origin;
    std::string sock;
    std::uint16_t mport = 0;

    explicit MetricsRun(std::vector<std::string> extra = {}) {
        auto args = device_args(d, p, "dev");
        args.insert(args.end(), {"--metrics", "127.0.0.1:0"});
        args.insert(args.end(), extra.begin(), extra.end());
        dev.emplace(spawn(d, "dev", args));
        auto line = ready(*dev);
        sock = field(line, "control");
        mport = static_cast<std::uint16_t>(std::stoi(field(line, "metrics").substr(10)));
        REQUIRE(ctl(sock, "add", {{"manifest", p.manifest}, {"out", d / "out.bin"}}).value("ok", false));
        origin.emplace(start_origin(d, p, field(line, "dht")));
        ready(*origin);
        REQUIRE(wait_for([&] { return patch_status(sock).value("state", "") == "complete"; }, 15'000));
    }
    std::string body() {
        auto resp = http_get(mport, "GET /metrics HTTP/1.0\r\n\r\n");
        return resp.substr(resp.find("\r\n\r\n") + 2);
    }
    void stop() {
        ::kill(dev->pid, SIGTERM);
        ::kill(origin->pid, SIGTERM);
        CHECK(finish(*dev).code == 0);
        CHECK(finish(*origin).code == 0);
    }
};

// A sample's value as a number (counters of seconds are not integers).
std::optional<double> sample_double(const std::string& text, const std::string& series) {
    auto p = text.find("\n" + series + " ");
    if (p == std::string::npos) return std::nullopt;
    return std::stod(text.substr(p + series.size() + 2));
}

}  // namespace

TEST_CASE("daemon: the metrics endpoint serves the counters and anything but GET /metrics is refused") {
    MetricsRun m;
    auto& sock = m.sock;
    auto mport = m.mport;

    auto resp = http_get(mport, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(resp.find("HTTP/1.0 200 OK\r\n") == 0);
    CHECK(resp.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    auto body = resp.substr(resp.find("\r\n\r\n") + 4);
    CHECK(sample(body, "patchswarm_segments_verified_total") == 3u);
    CHECK(sample(body, "patchswarm_segments_rejected_total") == 0u);
    CHECK(sample(body, "patchswarm_bytes_received_total{source=\"origin\"}") == std::uint64_t{3 << 20});
    CHECK(sample(body, "patchswarm_bytes_received_total{source=\"same_domain_peer\"}") == 0u);
    CHECK(sample(body, "patchswarm_downloads_completed_total") == 1u);
    CHECK(sample(body, "patchswarm_peers").value_or(0) >= 1);
    CHECK(sample(body, "patchswarm_dht_operations_total{op=\"get\"}").value_or(0) > 0);
    CHECK(sample(body, "patchswarm_banned_peers") == 0u);
    CHECK(body.find("# TYPE patchswarm_bytes_received_total counter") != std::string::npos);

    // Counters stay monotonic when a patch is removed.
    REQUIRE(ctl(sock, "remove", {{"patch", "p"}}).value("ok", false));
    auto after = http_get(mport, "GET /metrics HTTP/1.0\r\n\r\n");
    CHECK(sample(after.substr(after.find("\r\n\r\n") + 2), "patchswarm_segments_verified_total") == 3u);

    CHECK(http_get(mport, "GET /other HTTP/1.0\r\n\r\n").find("HTTP/1.0 404") == 0);
    CHECK(http_get(mport, "POST /metrics HTTP/1.0\r\n\r\n").find("HTTP/1.0 405") == 0);
    CHECK(http_get(mport, "GET /metrics\r\n\r\n").find("HTTP/1.0 400") == 0);
    CHECK(http_get(mport, "GET /metrics HTTP/1.0\r\nX: " + std::string(10000, 'a')).find("HTTP/1.0 431") == 0);

    m.stop();
}

TEST_CASE("daemon: metrics carry build info, process figures, cache bytes and segment fetch times by source") {
    MetricsRun m({"--quota", "64M"});
    auto body = m.body();
    INFO(body);
    // Build info: the version --version prints, the role and the domain.
    auto v = run_cli(m.d, {"--version"});
    std::string version = v.out.substr(std::string("patchswarm ").size());
    version.erase(version.find_last_not_of("\n") + 1);
    CHECK(sample(body, "patchswarm_build_info{version=\"" + version + "\",role=\"peer\",domain=\"d1\"}") == 1u);
    // The process, checked against what /proc says of it.
    auto rss = sample(body, "process_resident_memory_bytes").value_or(0);
    CHECK(rss > (4u << 20));
    CHECK(rss < (512u << 20));
    auto fds = sample(body, "process_open_fds").value_or(0);
    std::uint64_t proc_fds = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/" + std::to_string(m.dev->pid) + "/fd")) ++proc_fds;
    CHECK(fds + 3 >= proc_fds);
    CHECK(fds <= proc_fds + 3);
    CHECK(sample(body, "process_max_fds").value_or(0) >= fds);
    CHECK(sample_double(body, "process_cpu_seconds_total").value_or(-1) > 0);
    CHECK(body.find("# TYPE process_cpu_seconds_total counter") != std::string::npos);
    // The cache: what the patch takes, under the quota.
    CHECK(sample(body, "patchswarm_cache_bytes").value_or(0) >= std::uint64_t{3 << 20});
    CHECK(sample(body, "patchswarm_cache_quota_bytes") == std::uint64_t{64 << 20});
    CHECK(sample(body, "patchswarm_dht_connected") == 1u);
    // Fetch times: three segments, all from the origin; buckets cumulative up to +Inf.
    const std::string h = "patchswarm_segment_fetch_seconds";
    CHECK(body.find("# TYPE " + h + " histogram") != std::string::npos);
    CHECK(sample(body, h + "_count{source=\"origin\"}") == 3u);
    CHECK(sample(body, h + "_bucket{source=\"origin\",le=\"+Inf\"}") == 3u);
    CHECK(sample(body, h + "_count{source=\"same_domain_peer\"}") == 0u);
    CHECK(sample_double(body, h + "_sum{source=\"origin\"}").value_or(0) > 0);
    std::uint64_t last = 0;
    for (auto* le : {"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "30", "60"}) {
        auto b = sample(body, h + "_bucket{source=\"origin\",le=\"" + le + "\"}");
        REQUIRE_MESSAGE(b, le);
        CHECK(*b >= last);
        last = *b;
    }
    CHECK(last == 3u);  // on loopback every segment is well within a minute
    m.stop();
}
