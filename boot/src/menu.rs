//! The boot menu: with more than one entry and a non-zero `timeout`, list
//! the entries and wait for a digit (from the keyboard or the serial
//! console, whichever the firmware's console reads) until the timeout
//! (`timeout: no` waits forever), then boot the choice or `default_entry`.

use capos_bootproto::config::Config;
use core::time::Duration;
use uefi::boot::{self, EventType, TimerTrigger, Tpl};
use uefi::proto::console::text::Key;
use uefi::println;

const MAX_SHOWN: usize = 9;

pub fn choose(cfg: &Config) -> usize {
    let n = cfg.entries.len().min(MAX_SHOWN);
    if n < 2 || cfg.timeout == Some(0) {
        return cfg.default_entry;
    }
    println!("capos-boot: boot menu");
    for (i, e) in cfg.entries.iter().take(n).enumerate() {
        println!("  {}) {}{}", i + 1, e.name, if i == cfg.default_entry { " (default)" } else { "" });
    }
    match cfg.timeout {
        Some(t) => println!("capos-boot: press 1-{} to choose; entry {} boots in {} s", n, cfg.default_entry + 1, t),
        None => println!("capos-boot: press 1-{} to choose (no timeout)", n),
    }
    let Ok(key_event) = uefi::system::with_stdin(|s| s.wait_for_key_event()) else {
        println!("capos-boot: no console input; booting the default entry");
        return cfg.default_entry;
    };
    // SAFETY: a plain timer event with no notification function.
    let Ok(timer) = (unsafe { boot::create_event(EventType::TIMER, Tpl::APPLICATION, None, None) }) else {
        return cfg.default_entry;
    };
    if let Some(t) = cfg.timeout {
        if boot::set_timer(&timer, TimerTrigger::Relative(Duration::from_secs(t))).is_err() {
            return cfg.default_entry;
        }
    }
    let choice = loop {
        // SAFETY: the clones are only used for this wait; the events stay
        // open until the end of the function.
        let events = unsafe { [key_event.unsafe_clone(), timer.unsafe_clone()] };
        match boot::wait_for_event(&events) {
            Ok(1) => {
                println!("capos-boot: timeout; booting entry {}", cfg.default_entry + 1);
                break cfg.default_entry;
            }
            Ok(_) => {
                let key = uefi::system::with_stdin(|s| s.read_key());
                if let Ok(Some(Key::Printable(c))) = key {
                    let ch = char::from(c);
                    if let Some(d) = ch.to_digit(10) {
                        if (1..=n as u32).contains(&d) {
                            break d as usize - 1;
                        }
                    }
                    println!("capos-boot: '{}' is not an entry; press 1-{}", ch, n);
                }
            }
            Err(_) => break cfg.default_entry,
        }
    };
    let _ = boot::close_event(timer);
    choice
}
