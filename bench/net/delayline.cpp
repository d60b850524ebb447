// ps_delayline: a userspace NFQUEUE delay line for the emulated operator network
// (bench/net/netbench.py). This kernel has no netem, so one-way delay and loss
// are added here: every packet that iptables sends to queue N is held for
// --delay-ms and then accepted, or dropped with probability --loss (seeded RNG).
//
// Copy mode is metadata only (the payload stays in the kernel). The delay is the
// same for every packet of a queue, so packets fall due in arrival (= id) order
// and one batch verdict (NFQNL_MSG_VERDICT_BATCH: every id up to X) releases all
// that are due. While holding packets the loop does not wake per packet: it
// sleeps in ticks of at most --tick-us (200 µs), drains the socket, stamps the
// packets read with the middle of the tick (±tick/2), and releases what is due.
// With nothing held it blocks on the socket, so a lone packet is stamped exactly.
//
//   ps_delayline --queue 0 --delay-ms 20 [--loss 0.01] [--seed 1] [--tick-us 200] [--rt 0|1]
//
// With --rt 1 (the default) it asks for SCHED_FIFO priority 10 and a 1 ns timer
// slack, so that a busy machine (a compile next door) does not make it late; the
// ready line says whether it got it.
//
// Prints "ready queue=N" once bound; on SIGTERM/SIGINT prints one JSON line of
// statistics (packets accepted and dropped, batches, wakes, release lateness).
// glibc's headers before the kernel's (they would define in_addr twice).
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using ns_t = int64_t;
ns_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ns_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Held {
  uint32_t id;
  ns_t due;
};

struct Options {
  unsigned queue = 0;
  double delay_ms = 0;
  double loss = 0;
  uint64_t seed = 1;
  int tick_us = 200;
  bool rt = true;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ps_delayline: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "ps_delayline: %s\nusage: ps_delayline --queue N --delay-ms MS [--loss P] [--seed S] [--tick-us US] [--rt 0|1]\n", msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    char* end = nullptr;
    if (a == "--queue") o.queue = unsigned(std::strtoul(v, &end, 10));
    else if (a == "--delay-ms") o.delay_ms = std::strtod(v, &end);
    else if (a == "--loss") o.loss = std::strtod(v, &end);
    else if (a == "--seed") o.seed = std::strtoull(v, &end, 10);
    else if (a == "--tick-us") o.tick_us = int(std::strtol(v, &end, 10));
    else if (a == "--rt") o.rt = std::strtol(v, &end, 10) != 0;
    else usage(("unknown option " + a).c_str());
    if (end == v || *end != '\0') usage(("bad value for " + a).c_str());
  }
  if (o.delay_ms < 0 || o.loss < 0 || o.loss >= 1 || o.tick_us < 10) usage("value out of range");
  return o;
}

class Queue {
 public:
  explicit Queue(unsigned num) : num_(num), buf_(MNL_SOCKET_BUFFER_SIZE * 4) {
    nl_ = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl_) die("mnl_socket_open");
    if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) die("mnl_socket_bind");
    portid_ = mnl_socket_get_portid(nl_);
    int one = 1;
    mnl_socket_setsockopt(nl_, NETLINK_NO_ENOBUFS, &one, sizeof one);
    int rcv = 64 << 20;
    setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);

    nlmsghdr* nlh = nfq_nlmsg_put(buf_.data(), NFQNL_MSG_CONFIG, num_);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    send(nlh, "bind queue");
    nlh = nfq_nlmsg_put(buf_.data(), NFQNL_MSG_CONFIG, num_);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_META, 0);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, 65536);
    // GSO packets (up to 16 KiB here) are queued whole, not segmented first.
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
    send(nlh, "configure queue");
    fd_ = mnl_socket_get_fd(nl_);
  }
  ~Queue() { mnl_socket_close(nl_); }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  int fd() const { return fd_; }

  // Reads every message waiting (non-blocking); calls on_packet(id) for each.
  template <class F>
  void drain(F&& on_packet) {
    for (;;) {
      ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (errno == ENOBUFS) continue;
        die("recv");
      }
      auto* nlh = reinterpret_cast<nlmsghdr*>(buf_.data());
      int len = int(n);
      for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) continue;
        nlattr* attr[NFQA_MAX + 1] = {};
        if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) continue;
        auto* ph = static_cast<nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
        on_packet(ntohl(ph->packet_id));
      }
    }
  }

  void verdict(uint32_t id, int verdict, bool batch) {
    char out[256];
    nlmsghdr* nlh = nfq_nlmsg_put(out, batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, num_);
    nfq_nlmsg_verdict_put(nlh, int(id), verdict);
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) die("verdict");
  }

 private:
  void send(nlmsghdr* nlh, const char* what) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) die(what);
    ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
    if (n < 0 || mnl_cb_run(buf_.data(), size_t(n), 0, portid_, nullptr, nullptr) < 0) die(what);
  }

  unsigned num_;
  std::vector<char> buf_;
  mnl_socket* nl_ = nullptr;
  unsigned portid_ = 0;
  int fd_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  bool rt = false;
  if (opt.rt) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    sched_param sp{};
    sp.sched_priority = 10;
    rt = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  }
  Queue q(opt.queue);
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  const ns_t delay = ns_t(opt.delay_ms * 1e6);
  const ns_t tick = ns_t(opt.tick_us) * 1000;

  std::deque<Held> held;
  uint64_t accepted = 0, dropped = 0, batches = 0, wakes = 0;
  double late_sum_ns = 0;
  ns_t late_max = 0;
  uint64_t late_100us = 0, late_1ms = 0;  // packets released more than 0.1 / 1 ms after due
  ns_t last_wake = now_ns();

  std::printf("ready queue=%u delay_ms=%.3f loss=%.4f rt=%d\n", opt.queue, opt.delay_ms, opt.loss, int(rt));
  std::fflush(stdout);

  while (!g_stop) {
    ns_t stamp;
    if (held.empty()) {
      pollfd p{q.fd(), POLLIN, 0};
      int r = poll(&p, 1, 200);  // blocks until a packet arrives: stamped exactly
      if (r <= 0) continue;
      last_wake = stamp = now_ns();
    } else {
      // Sleep until the next tick or the first packet due, whichever comes first.
      ns_t wake = std::min(last_wake + tick, held.front().due);
      wake = std::max(wake, last_wake + tick / 2);  // at most one wake per ~100-200 µs
      timespec ts{time_t(wake / 1000000000), long(wake % 1000000000)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      ns_t t = now_ns();
      stamp = (last_wake + t) / 2;  // the packets read now arrived since the last wake
      last_wake = t;
    }
    ++wakes;
    q.drain([&](uint32_t id) {
      if (opt.loss > 0 && coin(rng) < opt.loss) {
        q.verdict(id, NF_DROP, false);
        ++dropped;
      } else {
        held.push_back({id, stamp + delay});
      }
    });
    const ns_t t = now_ns();
    if (!held.empty() && held.front().due <= t) {
      uint32_t last = 0;
      while (!held.empty() && held.front().due <= t) {
        const ns_t late = t - held.front().due;
        late_sum_ns += double(late);
        late_max = std::max(late_max, late);
        late_100us += late > 100000;
        late_1ms += late > 1000000;
        last = held.front().id;
        held.pop_front();
        ++accepted;
      }
      q.verdict(last, NF_ACCEPT, true);  // every id up to `last` still queued
      ++batches;
    }
  }
  // Stopping: let what is still held through rather than leave it queued.
  if (!held.empty()) q.verdict(held.back().id, NF_ACCEPT, true);
  std::printf(
      "{\"queue\":%u,\"delay_ms\":%.3f,\"loss\":%.4f,\"accepted\":%llu,\"dropped\":%llu,\"batches\":%llu,"
      "\"wakes\":%llu,\"late_mean_us\":%.1f,\"late_max_us\":%.1f,\"late_over_100us\":%llu,"
      "\"late_over_1ms\":%llu,\"rt\":%d}\n",
      opt.queue, opt.delay_ms, opt.loss, (unsigned long long)accepted, (unsigned long long)dropped,
      (unsigned long long)batches, (unsigned long long)wakes, accepted ? late_sum_ns / double(accepted) / 1e3 : 0.0,
      double(late_max) / 1e3, (unsigned long long)late_100us, (unsigned long long)late_1ms, int(rt));
  return 0;
}
