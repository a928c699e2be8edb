//! Steering an `SO_REUSEPORT` group by the workers' health: a tiny BPF
//! program, attached to the group, picks the listening socket of a new
//! connection among the slots the master says are live.
//!
//! # Why
//!
//! Without a program, the kernel picks a group's socket by a hash of the
//! connection's addresses (`reuseport_select_sock_by_hash`): evenly, and
//! blindly. A worker that stopped answering (SIGSTOP, a long computation)
//! keeps getting its share of new connections, which wait in its own accept
//! queue until it runs again: the report's stalled-worker experiment
//! measured p99 ≈ 447 ms for `handoff-reuseport` against 0.5–0.7 ms for the
//! shared listener. The master pings every worker and holds every socket of
//! the group, so it can tell the kernel, within milliseconds, which sockets
//! to leave out. Connections already queued on a left-out socket still wait
//! for their worker; new ones stop arriving there.
//!
//! # What the kernel runs
//!
//! A program of type `BPF_PROG_TYPE_SK_REUSEPORT`, attached with
//! `setsockopt(SO_ATTACH_REUSEPORT_EBPF)` on any socket of the group (it is
//! the group's, not that socket's), runs for every new connection (each SYN
//! that finds no request socket) and picks the socket with the helper
//! `bpf_sk_select_reuseport` from two maps the master fills:
//!
//! - `sockets`, a `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`: slot i → the listening
//!   socket of slot i (the master writes the socket's fd; the kernel stores
//!   the socket). Filled once: the master keeps every socket for the life
//!   of the group, and a respawned worker gets the same socket again.
//! - `live`, a `BPF_MAP_TYPE_ARRAY` of u32: key 0 holds how many slots are
//!   live (n), keys 1..=n their slot numbers.
//!
//! The program scales the kernel's own hash to `0..n` exactly as the
//! kernel does without a program (`reciprocal_scale`: `hash × n >> 32`),
//! looks up the slot at that place of the live list and selects its
//! socket: with every slot live, connections spread as evenly as without
//! the program. When nothing is live (n = 0), or the selection fails (a
//! socket that stopped listening has left the map), it returns
//! `SK_PASS` without a selection, and the kernel falls back to its hash:
//! never a refused connection because of the program.
//!
//! The master rewrites the list (entries first, then the count) whenever a
//! slot's health changes. A connection that arrives mid-rewrite may read a
//! list that mixes the old and the new one: it goes to a slot that was live
//! a moment ago, the same as if it had come a microsecond earlier.
//!
//! # How it is built: by hand, over raw `bpf(2)`
//!
//! The program is 32 instructions, written out below with a comment each,
//! and loaded with `syscall(SYS_bpf, BPF_PROG_LOAD, ...)`. A loader crate
//! would not spare writing it: aya and libbpf load programs from ELF
//! objects, which a BPF compiler must produce (clang, or Rust's nightly
//! toolchain with `bpf-linker`); libbpf-rs also builds libbpf's C sources.
//! Four commands of one syscall (map create, map update, program load) and
//! two socket options need no dependency, and a reader sees every
//! instruction the kernel runs.
//!
//! # What it needs
//!
//! Loading a `SK_REUSEPORT` program and creating a `REUSEPORT_SOCKARRAY`
//! need CAP_BPF and CAP_NET_ADMIN (root does); the program type, the map
//! type and the `hash` field of its context exist since Linux 4.19, and
//! `SO_DETACH_REUSEPORT_BPF` since 5.3. Where BPF is not permitted or the
//! kernel lacks it, [`SteerError::is_usage`] says so: the master exits 2
//! with one line, never silently falling back to the hash.
//!
//! # One map per socket
//!
//! A socket can be in one `REUSEPORT_SOCKARRAY` at a time (the kernel keeps
//! its place in the map in `sk_user_data`; a second map's update fails with
//! EBUSY). On a takeover, the new master's map can take the sockets only
//! once the old master has let them go ([`Program::release`], at its
//! handover); [`Program::fill`] tells the caller to try again until then.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// How new connections are spread over the sockets of a `handoff --pass
/// reuseport` group: handoff's `--steer` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Steer {
    /// The kernel's hash of the connection's addresses, blind to the
    /// workers' health (no program attached).
    Hash,
    /// The master's BPF program: the hash over the slots whose workers
    /// answer their pings (see the module doc).
    Health,
}

/// Why the steering program could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The kernel refused for lack of privilege (EPERM): CAP_BPF and
    /// CAP_NET_ADMIN are needed.
    #[error(
        "BPF is not permitted here ({step}: {source}); --steer health needs CAP_BPF and CAP_NET_ADMIN (root)"
    )]
    NotPermitted {
        /// The step that failed.
        step: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// The kernel has no `bpf(2)` (ENOSYS), or not this program or map type
    /// (EINVAL without a verifier log).
    #[error(
        "this kernel cannot steer SO_REUSEPORT with BPF ({step}: {source}); --steer health needs Linux 4.19 or later built with CONFIG_BPF_SYSCALL"
    )]
    Unsupported {
        /// The step that failed.
        step: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// The verifier rejected the program: a bug in the instructions below.
    #[error("the kernel's verifier rejected the steering program ({source}): {log}")]
    Rejected {
        /// The verifier's log, its last lines.
        log: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// The sockets could not be put in the map.
    #[error("put the listening sockets in the REUSEPORT_SOCKARRAY: {0}")]
    Fill(#[from] FillError),
    /// Any other failure of a step.
    #[error("{step}: {source}")]
    Failed {
        /// The step that failed.
        step: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

impl SteerError {
    /// Whether the user can fix it by running elsewhere or differently (as
    /// root, on a newer kernel), or by not asking for `--steer health`:
    /// exit 2, as for any usage error.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SteerError::NotPermitted { .. } | SteerError::Unsupported { .. }
        )
    }

    /// Sorts the kernel's answer to `step` by what the user can do about it.
    fn from_errno(step: &'static str, source: io::Error) -> SteerError {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => SteerError::NotPermitted { step, source },
            Some(libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => {
                SteerError::Unsupported { step, source }
            }
            _ => SteerError::Failed { step, source },
        }
    }
}

/// Why [`Program::fill`] could not put the sockets in the map.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// A socket is still in another `REUSEPORT_SOCKARRAY` (EBUSY): the old
    /// master's, during a takeover, until it lets go. Try again later.
    #[error("a socket is still in another master's map")]
    InAnotherMap,
    /// Anything else, such as EINVAL for a socket that does not listen or
    /// is not in a `SO_REUSEPORT` group.
    #[error("{0}")]
    Failed(io::Error),
}

/// The program and its two maps, loaded for a group of `slots` sockets.
/// Dropping it closes them; the kernel keeps the program (and so its maps)
/// as long as a group has it attached.
#[derive(Debug)]
pub struct Program {
    /// The loaded program, to attach.
    program: OwnedFd,
    /// `REUSEPORT_SOCKARRAY`: slot → listening socket.
    sockets: OwnedFd,
    /// `ARRAY` of u32: the count of live slots at key 0, the slots after it.
    live: OwnedFd,
    /// How many slots the group has (the maps' size).
    slots: u32,
}

impl Program {
    /// Creates the maps and loads the program for a group of `slots`
    /// sockets. Nothing is attached yet, and the maps are empty.
    pub fn load(slots: usize) -> Result<Program, SteerError> {
        let slots = u32::try_from(slots).map_err(|_| SteerError::Failed {
            step: "map size",
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        let sockets = map_create(
            BPF_MAP_TYPE_REUSEPORT_SOCKARRAY,
            SOCKETS_VALUE_SIZE,
            slots,
            b"handoff_sockets",
        )
        .map_err(|err| SteerError::from_errno("create the REUSEPORT_SOCKARRAY map", err))?;
        let live = map_create(BPF_MAP_TYPE_ARRAY, 4, slots + 1, b"handoff_live")
            .map_err(|err| SteerError::from_errno("create the ARRAY map", err))?;
        let instructions = instructions(live.as_raw_fd(), sockets.as_raw_fd());
        let program = prog_load(&instructions)?;
        Ok(Program {
            program,
            sockets,
            live,
            slots,
        })
    }

    /// Puts each socket of the group in the `sockets` map at its slot: all
    /// of them, or (on an error) none, so that it can be tried again (the
    /// kernel refuses a socket already in this very map, EBUSY too).
    pub fn fill(&self, sockets: &[OwnedFd]) -> Result<(), FillError> {
        for (slot, socket) in (0..self.slots).zip(sockets) {
            // The value is the socket's fd; the kernel stores the socket.
            let fd = u64::try_from(socket.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput);
            let put = fd.map_err(io::Error::from).and_then(|fd| {
                map_update(self.sockets.as_fd(), &slot.to_ne_bytes(), &fd.to_ne_bytes())
            });
            if let Err(err) = put {
                // Best effort: what cannot be taken out makes the next try
                // fail the same way, and is reported then.
                let _ = self.release();
                return Err(match err.raw_os_error() {
                    // The socket's `sk_user_data` points into another map.
                    Some(libc::EBUSY) => FillError::InAnotherMap,
                    _ => FillError::Failed(err),
                });
            }
        }
        Ok(())
    }

    /// Empties the `sockets` map, so that another master's map may take
    /// the sockets (a takeover's new master). Every slot is tried; ENOENT
    /// (not in the map) is no error.
    pub fn release(&self) -> io::Result<()> {
        let mut result = Ok(());
        for slot in 0..self.slots {
            match map_delete(self.sockets.as_fd(), &slot.to_ne_bytes()) {
                Err(err) if err.raw_os_error() != Some(libc::ENOENT) => result = Err(err),
                _ => {}
            }
        }
        result
    }

    /// Makes `live` the slots new connections go to (in this order of
    /// the hash's range); none: the kernel's hash over every socket.
    pub fn set_live(&self, live: &[u32]) -> io::Result<()> {
        let count = u32::try_from(live.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        if count > self.slots {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // The list first, then its length: a reader never sees a count
        // that covers entries not written yet.
        for (key, slot) in (1u32..).zip(live) {
            map_update(self.live.as_fd(), &key.to_ne_bytes(), &slot.to_ne_bytes())?;
        }
        map_update(self.live.as_fd(), &0u32.to_ne_bytes(), &count.to_ne_bytes())
    }

    /// Attaches the program to the `SO_REUSEPORT` group of `socket`
    /// (`setsockopt(SO_ATTACH_REUSEPORT_EBPF)`), replacing whatever program
    /// the group had: the kernel drops its reference to the old one.
    pub fn attach(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        let fd: libc::c_int = self.program.as_raw_fd();
        setsockopt_int(socket, libc::SO_ATTACH_REUSEPORT_EBPF, fd)
    }
}

/// Detaches any program from the `SO_REUSEPORT` group of `socket`
/// (`SO_DETACH_REUSEPORT_BPF`), back to the kernel's hash. Ok if there was
/// none (ENOENT).
pub fn detach(socket: BorrowedFd<'_>) -> io::Result<()> {
    // The kernel ignores the value.
    match setsockopt_int(socket, libc::SO_DETACH_REUSEPORT_BPF, 0) {
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        done => done,
    }
}

/// `setsockopt(SOL_SOCKET, option, &value)` with an int value.
fn setsockopt_int(
    socket: BorrowedFd<'_>,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `socket` is borrowed for the call, and the kernel reads
    // size_of::<c_int>() bytes from `value`, which lives across it.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// The kernel's ABI (include/uapi/linux/bpf.h), the few names used here.

/// `bpf(2)` commands.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;

/// Map types.
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: u32 = 20;

/// The program type that may select a socket of a reuseport group.
const BPF_PROG_TYPE_SK_REUSEPORT: u32 = 21;

/// The `sockets` map's value: the fd as a u64 on update (a lookup from
/// user space then reads the socket's cookie, which needs 8 bytes).
const SOCKETS_VALUE_SIZE: u32 = 8;

/// Helper numbers (`enum bpf_func_id`).
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_SK_SELECT_REUSEPORT: i32 = 82;

/// The program's verdicts: `SK_PASS` keeps the connection (with the
/// selected socket, or the kernel's hash if none was selected).
const SK_PASS: i32 = 1;

/// `offsetof(struct sk_reuseport_md, hash)`: after `data`, `data_end` (two
/// pointers, 8 bytes each in the BPF ABI), `len`, `eth_protocol`,
/// `ip_protocol` and `bind_inany` (four u32).
const CTX_HASH_OFFSET: i16 = 32;

/// `src_reg` of a 64-bit immediate load whose value is a map's fd, which
/// the verifier replaces with the map's address.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// One BPF instruction (`struct bpf_insn`): opcode, destination and source
/// registers (4 bits each, destination low), offset, immediate.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// An instruction from its fields.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes: class | size or operation | source (`BPF_K`: the immediate,
// `BPF_X`: a register).
/// `BPF_ALU64 | BPF_MOV | BPF_X`: dst = src.
const MOV64_REG: u8 = 0xbf;
/// `BPF_ALU64 | BPF_MOV | BPF_K`: dst = imm.
const MOV64_IMM: u8 = 0xb7;
/// `BPF_ALU64 | BPF_ADD | BPF_K`: dst += imm.
const ADD64_IMM: u8 = 0x07;
/// `BPF_ALU64 | BPF_MUL | BPF_X`: dst *= src.
const MUL64_REG: u8 = 0x2f;
/// `BPF_ALU64 | BPF_RSH | BPF_K`: dst >>= imm.
const RSH64_IMM: u8 = 0x77;
/// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
const LDX_W: u8 = 0x61;
/// `BPF_ST | BPF_MEM | BPF_W`: *(u32 *)(dst + off) = imm.
const ST_W: u8 = 0x62;
/// `BPF_STX | BPF_MEM | BPF_W`: *(u32 *)(dst + off) = src.
const STX_W: u8 = 0x63;
/// `BPF_LD | BPF_IMM | BPF_DW`: dst = a 64-bit immediate, over two slots.
const LD_IMM64: u8 = 0x18;
/// `BPF_JMP | BPF_JEQ | BPF_K`: if dst == imm, skip `off` instructions.
const JEQ_IMM: u8 = 0x15;
/// `BPF_JMP | BPF_CALL`: r0 = helper imm(r1, .., r5).
const CALL: u8 = 0x85;
/// `BPF_JMP | BPF_EXIT`: return r0.
const EXIT: u8 = 0x95;

/// The registers: r0 the return value, r1–r5 a helper's arguments (and
/// clobbered by the call), r6–r9 kept across calls, r10 the frame pointer.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R10: u8 = 10;

/// The two slots of `dst = map` (`LD_IMM64` with the map's fd, which the
/// verifier turns into the map's address).
fn load_map(dst: u8, map: RawFd) -> [Insn; 2] {
    [
        insn(LD_IMM64, dst, BPF_PSEUDO_MAP_FD, 0, map),
        insn(0, 0, 0, 0, 0),
    ]
}

/// The program, in order. `live` and `sockets` are the maps' fds.
///
/// In C it would read:
///
/// ```c
/// u32 key = 0, *count = bpf_map_lookup_elem(&live, &key);
/// if (!count || !*count) return SK_PASS;              // nothing live: the hash
/// key = 1 + ((u64)ctx->hash * *count >> 32);           // reciprocal_scale
/// u32 *slot = bpf_map_lookup_elem(&live, &key);
/// if (!slot) return SK_PASS;
/// u32 sk = *slot;
/// bpf_sk_select_reuseport(ctx, &sockets, &sk, 0);     // failed: the hash
/// return SK_PASS;
/// ```
fn instructions(live: RawFd, sockets: RawFd) -> Vec<Insn> {
    // The three early exits jump to `pass`, the last two instructions;
    // an offset counts from the instruction after the jump.
    const PASS: i16 = 30;
    let mut program = vec![
        // 0: keep the context (struct sk_reuseport_md *) across the calls.
        insn(MOV64_REG, R6, R1, 0, 0),
        // 1: r7 = ctx->hash, the kernel's hash of the connection's addresses.
        insn(LDX_W, R7, R6, CTX_HASH_OFFSET, 0),
        // 2: the key on the stack: 0, where the count of live slots is.
        insn(ST_W, R10, 0, -4, 0),
    ];
    // 3, 4: r1 = &live.
    program.extend(load_map(R1, live));
    program.extend([
        // 5, 6: r2 = &key (fp - 4).
        insn(MOV64_REG, R2, R10, 0, 0),
        insn(ADD64_IMM, R2, 0, 0, -4),
        // 7: r0 = bpf_map_lookup_elem(&live, &key): a pointer to the count.
        insn(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
        // 8: no entry (cannot happen in an ARRAY, but the verifier wants the check).
        insn(JEQ_IMM, R0, 0, PASS - 9, 0),
        // 9: r8 = the count of live slots.
        insn(LDX_W, R8, R0, 0, 0),
        // 10: nothing live: leave the choice to the kernel.
        insn(JEQ_IMM, R8, 0, PASS - 11, 0),
        // 11, 12: r7 = hash * count >> 32, in 0..count (the kernel's reciprocal_scale).
        insn(MUL64_REG, R7, R8, 0, 0),
        insn(RSH64_IMM, R7, 0, 0, 32),
        // 13, 14: key = that place + 1: the live slots are at keys 1..=count.
        insn(ADD64_IMM, R7, 0, 0, 1),
        insn(STX_W, R10, R7, -4, 0),
    ]);
    // 15, 16: r1 = &live.
    program.extend(load_map(R1, live));
    program.extend([
        // 17, 18: r2 = &key.
        insn(MOV64_REG, R2, R10, 0, 0),
        insn(ADD64_IMM, R2, 0, 0, -4),
        // 19: r0 = bpf_map_lookup_elem(&live, &key): a pointer to the slot.
        insn(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
        // 20: out of the array (a count larger than the map): the hash.
        insn(JEQ_IMM, R0, 0, PASS - 21, 0),
        // 21, 22: the slot, as the sockets map's key at fp - 8.
        insn(LDX_W, R1, R0, 0, 0),
        insn(STX_W, R10, R1, -8, 0),
        // 23: r1 = ctx.
        insn(MOV64_REG, R1, R6, 0, 0),
    ]);
    // 24, 25: r2 = &sockets.
    program.extend(load_map(R2, sockets));
    program.extend([
        // 26, 27: r3 = &slot (fp - 8).
        insn(MOV64_REG, R3, R10, 0, 0),
        insn(ADD64_IMM, R3, 0, 0, -8),
        // 28: r4 = 0, no flags.
        insn(MOV64_IMM, R4, 0, 0, 0),
        // 29: bpf_sk_select_reuseport(ctx, &sockets, &slot, 0); its error
        // (no socket at that slot yet, or one being closed) is ignored:
        // with nothing selected the kernel uses its hash.
        insn(CALL, 0, 0, 0, BPF_FUNC_SK_SELECT_REUSEPORT),
        // 30: pass: r0 = SK_PASS.
        insn(MOV64_IMM, R0, 0, 0, SK_PASS),
        // 31: return r0.
        insn(EXIT, 0, 0, 0, 0),
    ]);
    debug_assert_eq!(program[PASS as usize].imm, SK_PASS);
    program
}

/// `union bpf_attr` for `BPF_MAP_CREATE`, up to `map_name`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for the `BPF_MAP_*_ELEM` commands.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf(cmd, attr, sizeof attr)`; the kernel reads (and for some commands
/// writes) `attr`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` for `cmd`,
    // valid for its size during the call; the kernel zero-fills the rest.
    // Every pointer inside it points to memory the caller keeps alive
    // across this call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if done < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(done)
    }
}

/// A `bpf(2)` result that is a new fd (close-on-exec: the kernel makes
/// map and program fds so), owned from here on.
fn owned_fd(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(fd).map_err(|_| io::ErrorKind::InvalidData)?;
    // SAFETY: the kernel has just returned this fd to us; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name` as a NUL-padded object name (at most 15 bytes and the NUL).
fn object_name(name: &[u8]) -> [u8; 16] {
    let mut padded = [0; 16];
    for (to, from) in padded.iter_mut().zip(name.iter().take(15)) {
        *to = *from;
    }
    padded
}

/// `BPF_MAP_CREATE` with u32 keys; `name` shows in `bpftool map`.
fn map_create(
    map_type: u32,
    value_size: u32,
    max_entries: u32,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: 4,
        value_size,
        max_entries,
        map_name: object_name(name),
        ..MapCreateAttr::default()
    };
    owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)
}

/// `BPF_MAP_UPDATE_ELEM` (`BPF_ANY`: create or replace).
fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map)?,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_MAP_DELETE_ELEM`.
fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map)?,
        key: key.as_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// An fd as the u32 that `bpf_attr` carries.
fn fd_u32(fd: BorrowedFd<'_>) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// How much of the verifier's log a rejection reports: its end, where the
/// reason is.
const LOG_TAIL_BYTES: usize = 600;

/// `BPF_PROG_LOAD` of `instructions` as a `SK_REUSEPORT` program. On a
/// rejection the load is repeated with the verifier's log on, for the error.
fn prog_load(instructions: &[Insn]) -> Result<OwnedFd, SteerError> {
    const STEP: &str = "load the SK_REUSEPORT program";
    let license = c"Dual MIT/GPL";
    let attr = |log: &mut [u8]| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SK_REUSEPORT,
        insn_cnt: instructions.len() as u32,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // No buffer at all when there is no log: a pointer with a size of
        // 0 is EINVAL.
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: object_name(b"handoff_steer"),
        ..ProgLoadAttr::default()
    };
    let err = match bpf(BPF_PROG_LOAD, &mut attr(&mut [])) {
        Ok(fd) => return owned_fd(fd).map_err(|source| SteerError::Failed { step: STEP, source }),
        Err(err) => err,
    };
    if err.raw_os_error() != Some(libc::EACCES) && err.raw_os_error() != Some(libc::EINVAL) {
        return Err(SteerError::from_errno(STEP, err));
    }
    // EACCES is the verifier's "no" (or, with unprivileged BPF, a lack of
    // privilege); EINVAL a program or type it does not know. Its log tells.
    let mut log = vec![0u8; 64 * 1024];
    if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr(&mut log)) {
        // Loaded this time after all: only the first error is reported.
        drop(owned_fd(fd));
    }
    let text = String::from_utf8_lossy(&log);
    let text = text.trim_end_matches('\0').trim();
    if text.is_empty() {
        return Err(SteerError::from_errno(STEP, err));
    }
    let tail = text
        .char_indices()
        .rev()
        .nth(LOG_TAIL_BYTES)
        .map_or(text, |(at, _)| &text[at..]);
    Err(SteerError::Rejected {
        log: tail.split_whitespace().collect::<Vec<_>>().join(" "),
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};

    /// `n` listening SO_REUSEPORT sockets on one loopback port.
    fn group(n: usize) -> Vec<OwnedFd> {
        let backlog = crate::listen::DEFAULT_BACKLOG;
        let first = crate::listen::bind("127.0.0.1:0".parse().expect("an address"), true, backlog)
            .expect("bind the first socket");
        let addr = first.local_addr().expect("its address");
        let mut sockets = vec![OwnedFd::from(first)];
        for _ in 1..n {
            let next = crate::listen::bind(addr, true, backlog).expect("bind another socket");
            sockets.push(OwnedFd::from(next));
        }
        sockets
    }

    /// Connects `count` clients to the group and counts, per socket, the
    /// connections waiting in its accept queue.
    fn spread(sockets: &[OwnedFd], count: usize) -> Vec<usize> {
        let listeners: Vec<TcpListener> = sockets
            .iter()
            .map(|socket| TcpListener::from(socket.try_clone().expect("dup")))
            .collect();
        let addr = listeners[0].local_addr().expect("the address");
        let clients: Vec<TcpStream> = (0..count)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let counts = listeners
            .iter()
            .map(|listener| {
                listener.set_nonblocking(true).expect("non-blocking");
                let mut accepted = 0;
                loop {
                    match listener.accept() {
                        Ok(_) => accepted += 1,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => break accepted,
                        // Not listening any more (shut down): nothing queued.
                        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => break accepted,
                        Err(err) => panic!("accept: {err}"),
                    }
                }
            })
            .collect();
        drop(clients);
        counts
    }

    /// The program loads, or this test says why it cannot run here.
    fn load_or_skip(slots: usize) -> Option<Program> {
        match Program::load(slots) {
            Ok(program) => Some(program),
            Err(err) if err.is_usage() => {
                eprintln!("skipped: {err}");
                None
            }
            Err(err) => panic!("{err}"),
        }
    }

    /// With one slot of three live, every new connection goes to its
    /// socket; with none live, the kernel's hash spreads them again.
    #[test]
    fn steers_to_the_live_slots_only() {
        let sockets = group(3);
        let Some(program) = load_or_skip(sockets.len()) else {
            return;
        };
        program.fill(&sockets).expect("fill the sockets map");
        program.attach(sockets[0].as_fd()).expect("attach");
        program.set_live(&[1]).expect("set the live slots");
        assert_eq!(spread(&sockets, 30), [0, 30, 0]);
        program.set_live(&[0, 2]).expect("set the live slots");
        let counts = spread(&sockets, 30);
        assert_eq!(counts[1], 0, "{counts:?}");
        program.set_live(&[]).expect("no live slot");
        let counts = spread(&sockets, 60);
        assert!(
            counts.iter().all(|&n| n > 0),
            "the hash spreads: {counts:?}"
        );
    }

    /// A socket is in one REUSEPORT_SOCKARRAY at a time: a second map gets
    /// EBUSY until the first lets it go.
    #[test]
    fn a_socket_is_in_one_map_at_a_time() {
        let sockets = group(2);
        let (Some(first), Some(second)) = (load_or_skip(2), load_or_skip(2)) else {
            return;
        };
        first.fill(&sockets).expect("fill the first map");
        let busy = second.fill(&sockets).expect_err("a second map");
        assert!(matches!(busy, FillError::InAnotherMap), "{busy}");
        first.release().expect("release");
        second
            .fill(&sockets)
            .expect("fill the second map once released");
    }

    /// A fill that fails half-way takes back what it put: once the other
    /// map lets go, the same fill succeeds (a socket already in this map
    /// would be EBUSY too).
    #[test]
    fn a_failed_fill_puts_nothing() {
        let sockets = group(2);
        let (Some(other), Some(program)) = (load_or_skip(1), load_or_skip(2)) else {
            return;
        };
        other
            .fill(std::slice::from_ref(&sockets[1]))
            .expect("the other map takes socket 1");
        let busy = program
            .fill(&sockets)
            .expect_err("socket 1 is in the other map");
        assert!(matches!(busy, FillError::InAnotherMap), "{busy}");
        other.release().expect("release");
        program.fill(&sockets).expect("fill once released");
    }

    /// A live slot whose socket stops listening (`shutdown(SHUT_RD)`, as
    /// at a master's stop) leaves the map: the program's selection fails,
    /// and the kernel's hash over the sockets still listening takes the
    /// connection. Nothing is refused because of the program.
    #[test]
    fn a_socket_that_stops_listening_falls_back_to_the_hash() {
        let sockets = group(2);
        let Some(program) = load_or_skip(2) else {
            return;
        };
        program.fill(&sockets).expect("fill the sockets map");
        program.set_live(&[0]).expect("slot 0 only");
        program.attach(sockets[1].as_fd()).expect("attach");
        nix::sys::socket::shutdown(sockets[0].as_raw_fd(), nix::sys::socket::Shutdown::Read)
            .expect("shutdown(SHUT_RD)");
        assert_eq!(spread(&sockets, 20), [0, 20]);
    }

    /// Attaching a second program replaces the first: the group follows
    /// the second's live list.
    #[test]
    fn a_new_program_replaces_the_old() {
        let sockets = group(2);
        let (Some(old), Some(new)) = (load_or_skip(2), load_or_skip(2)) else {
            return;
        };
        old.fill(&sockets).expect("fill the old map");
        old.set_live(&[0]).expect("old: slot 0");
        old.attach(sockets[0].as_fd()).expect("attach the old");
        assert_eq!(spread(&sockets, 20), [20, 0]);
        old.release().expect("release");
        new.fill(&sockets).expect("fill the new map");
        new.set_live(&[1]).expect("new: slot 1");
        new.attach(sockets[1].as_fd()).expect("attach the new");
        assert_eq!(spread(&sockets, 20), [0, 20]);
        detach(sockets[0].as_fd()).expect("detach");
        let counts = spread(&sockets, 40);
        assert!(counts.iter().all(|&n| n > 0), "the hash again: {counts:?}");
        detach(sockets[0].as_fd()).expect("detaching nothing is fine");
    }
}
