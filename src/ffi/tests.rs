//! The boundary's panic handling, through the exported functions.

use std::ffi::{c_int, CStr, CString};

use super::boundary::{with_ctx, with_ctx_mut};
use super::codes::pcibind_error;
use super::context::{pcibind_ctx_free, pcibind_ctx_new, pcibind_ctx_set_modules_dir};
use super::pcibind_ctx;
use super::resolve::{pcibind_current_driver, pcibind_find_vfio_variant};
use super::strings::{pcibind_last_error_message, pcibind_string_free};

fn last_message() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(pcibind_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_panic_fails_that_call_drops_the_caches_and_leaves_the_context_usable() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let dev = sys.join("bus/pci/devices/0000:01:00.0");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(
        dev.join("modalias"),
        "pci:v00008086d00001572sv00008086sd00000001bc02sc00i00\n",
    )
    .unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(
        modules.join("modules.alias"),
        "alias pci:v00008086d00001572sv*sd*bc*sc*i* i40e\n",
    )
    .unwrap();
    let root = CString::new(sys.to_str().unwrap()).unwrap();
    let modules = CString::new(modules.to_str().unwrap()).unwrap();
    let mut ctx = std::ptr::null_mut();
    assert_eq!(unsafe { pcibind_ctx_new(root.as_ptr(), 0, &mut ctx) }, 0);
    assert_eq!(
        unsafe { pcibind_ctx_set_modules_dir(ctx, modules.as_ptr()) },
        0
    );
    let variant = |ctx: *mut pcibind_ctx| {
        let mut out = std::ptr::null_mut();
        let rc = unsafe { pcibind_find_vfio_variant(ctx, c"0000:01:00.0".as_ptr(), &mut out) };
        assert_eq!(rc, 0, "{}", last_message());
        unsafe { pcibind_string_free(out) };
    };
    variant(ctx);
    variant(ctx);
    let reads = || unsafe { &*ctx }.inner.tables.reads();
    assert_eq!(reads(), 1, "the second lookup comes from the cache");

    // A panic in the middle of a call that holds the tables' cache lock (poisoning it).
    let rc = unsafe { with_ctx(ctx, |ctx| ctx.tables.panic_holding_the_cache()) };
    assert_eq!(rc, pcibind_error::PCIBIND_ERR_INTERNAL as c_int);
    assert!(last_message().contains("boom"), "{}", last_message());
    assert!(!last_message().contains("PCIBIND_"), "{}", last_message());

    // The context serves the next call, from the tables read afresh.
    variant(ctx);
    assert_eq!(reads(), 2, "the cache was dropped after the panic");
    let mut out = std::ptr::null_mut();
    let rc = unsafe { pcibind_current_driver(ctx, c"0000:01:00.0".as_ptr(), &mut out) };
    assert_eq!(rc, 0, "{}", last_message());
    // The setters' path too.
    let rc = unsafe { with_ctx_mut(ctx, |_| panic!("boom again")) };
    assert_eq!(rc, pcibind_error::PCIBIND_ERR_INTERNAL as c_int);
    variant(ctx);
    assert_eq!(reads(), 3);
    unsafe { pcibind_ctx_free(ctx) };
}
