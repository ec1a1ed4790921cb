//! The loader inherits none of the caller's descriptors: every one but the standard streams
//! is marked close-on-exec between fork and exec (close_range, else the ones /proc lists,
//! else every number below the limit).

use std::io;

/// Marks every descriptor but the standard streams close-on-exec, so the loader inherits
/// none of the caller's (a C caller may hold descriptors without `O_CLOEXEC`). Runs in the
/// child between fork and exec: async-signal-safe system calls only, no allocation. Marked,
/// not closed: the standard library's own pipe that reports a failed exec must stay open
/// until the exec.
pub(super) fn cloexec_beyond_stdio() -> io::Result<()> {
    // close_range(3, ~0U, CLOSE_RANGE_CLOEXEC), Linux 5.11.
    // SAFETY: a system call that touches no memory of ours.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_long,
            libc::c_uint::MAX as libc::c_long,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_long,
        )
    } == 0;
    if !marked && cloexec_listed().is_err() {
        cloexec_counted();
    }
    Ok(())
}

/// Without close_range: each descriptor that `/proc/self/fd` lists, read with getdents64
/// into a buffer on the stack (opendir would allocate).
pub(super) fn cloexec_listed() -> io::Result<()> {
    // SAFETY: a NUL-terminated path.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    // linux_dirent64 records: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
    let mut buf = [0u64; 512];
    let result = loop {
        // SAFETY: `buf` is writable for the length given.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir as libc::c_long,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if n < 0 {
            break Err(io::Error::last_os_error());
        }
        if n == 0 {
            break Ok(());
        }
        // SAFETY: the kernel wrote `n` bytes of records.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + 19 < bytes.len() {
            let reclen = u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = &bytes[at + 19..(at + reclen).min(bytes.len())];
            let mut fd: libc::c_int = 0;
            let mut digits = 0;
            for &b in name.iter().take_while(|&&b| b != 0) {
                if !b.is_ascii_digit() || digits == 9 {
                    digits = 0;
                    break;
                }
                fd = fd * 10 + libc::c_int::from(b - b'0');
                digits += 1;
            }
            if digits > 0 && fd > 2 && fd != dir {
                set_cloexec(fd);
            }
            at += reclen;
        }
    };
    // SAFETY: our own descriptor.
    unsafe { libc::close(dir) };
    result
}

/// Without close_range nor /proc: every descriptor number below the limit on open files.
pub(super) fn cloexec_counted() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: one rlimit to fill.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..max {
        set_cloexec(fd);
    }
}

fn set_cloexec(fd: libc::c_int) {
    // SAFETY: fcntl on a descriptor number; one that is not open fails with EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}
