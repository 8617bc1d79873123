//! A real browser for tests of pages: Debian's Chromium, headless, driven over
//! WebDriver by `chromedriver` through fantoccini. Each test gets a chromedriver of
//! its own on a free loopback port, and a fresh browser profile; one test at a time
//! holds a browser (see [`ONE_AT_A_TIME`]). Screenshots are kept under
//! `target/screenshots/<test>/` for a person to look at.
//!
//! Without Chromium and chromedriver installed, [`Browser::start`] prints a line and
//! answers `None`, so the test skips; with `HERALD_REQUIRE_BROWSER` set, as in CI, a
//! missing browser fails instead.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

/// Where Debian's `chromium` package installs the browser's launcher.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` package installs the driver (the same version as
/// the browser: the package pins it, and a driver only drives its own major).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for an element lasts before the test fails. Pages come from a
/// server on loopback, so anything slower than this is a bug, not a slow network.
const WAIT: Duration = Duration::from_secs(10);

/// Held by the test that has a browser. The machine this runs on has two cores and
/// a Chromium wants most of one while it starts and renders; several at once (the
/// test binary runs tests in parallel) would make every one of them slow and the
/// waits flaky. An async mutex, because tests wait for it on their runtimes, and it
/// does not poison, so a failed test does not fail the ones after it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A headless Chromium for one test. Dropping it ends the session, which closes the
/// browser, and stops its chromedriver.
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Child,
    port: u16,
    screenshots: PathBuf,
    taken: u32,
    /// Released last, after the browser is gone.
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// A browser for the test named `test` (the name its screenshots are filed
    /// under), once no other test holds one. `None` when Chromium or chromedriver is
    /// not installed and `HERALD_REQUIRE_BROWSER` is not set.
    pub(crate) async fn start(test: &str) -> Option<Browser> {
        if !installed() {
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().await;

        let screenshots = target_dir().join("screenshots").join(test);
        // Only this run's pictures: an earlier run's would pass for this one's.
        let _ = std::fs::remove_dir_all(&screenshots);
        std::fs::create_dir_all(&screenshots).expect("target/ is writable");

        let port = free_port();
        // chromedriver's own log goes next to the screenshots: its output on the
        // terminal would mix with every test's, and a failed start is read there.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                screenshots.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let mut browser = Browser {
            client: None,
            driver,
            port,
            screenshots,
            taken: 0,
            _turn: turn,
        };
        browser.wait_until_driver_answers().await;

        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium refuses its sandbox.
                    "--no-sandbox",
                    // Containers give /dev/shm a few MiB; Chromium then crashes.
                    "--disable-dev-shm-usage",
                    // One size, so screenshots compare from run to run.
                    "--window-size=1280,900",
                    // The console is Polish; the browser asks for Polish as a user would.
                    "--lang=pl",
                ],
                // Headless Chromium takes its Accept-Language from here, not --lang.
                "prefs": {"intl.accept_languages": "pl-PL,pl"},
            }),
        );
        // Plain HTTP: chromedriver listens on loopback only, so TLS would buy
        // nothing, and fantoccini's TLS features pull in a second rustls crypto
        // provider that makes rustls refuse to pick one at run time.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session from chromedriver (its log: {}): {e}",
                    browser.screenshots.join("chromedriver.log").display()
                )
            });
        browser.client = Some(client);
        Some(browser)
    }

    /// The WebDriver session, for what the helpers below do not cover.
    pub(crate) fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session lasts as long as the browser")
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The first element matching the CSS selector `css`, once the page has one.
    pub(crate) async fn wait_for(&self, css: &str) -> Element {
        match self
            .client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                // What the page showed instead is the first thing to look at.
                let shot = self.screenshots.join("failure.png");
                if let Ok(png) = self.client().screenshot().await {
                    let _ = std::fs::write(&shot, png);
                }
                let url = self.client().current_url().await.map(|u| u.to_string());
                panic!(
                    "waiting {WAIT:?} for {css:?} on {url:?}: {e} (the page: {})",
                    shot.display()
                )
            }
        }
    }

    /// The text a person sees in the first element matching `css`.
    pub(crate) async fn text_of(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading the text of {css:?}: {e}"))
    }

    /// The text of the first element matching `css` once it contains `needle`: for
    /// what the page changes by itself after a moment (htmx swapping a part in).
    pub(crate) async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // The element may be swapped out between finding and reading it.
            let text: String = self.wait_for(css).await.text().await.unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("waiting {WAIT:?} for {needle:?} in {css:?}, which says {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the field matching `css`, in place of what it held.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {css:?}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css:?}: {e}"));
    }

    /// Clicks the element matching `css`, as a person would (WebDriver refuses if
    /// something covers it).
    pub(crate) async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css:?}: {e}"));
    }

    /// Clicks the element matching `css` and waits until the browser has left the
    /// page (a form posted, a link followed), so that what is read next is read on
    /// the new page and not on the old one before it goes.
    pub(crate) async fn click_to_next_page(&self, css: &str) {
        let old = self.wait_for("html").await;
        self.click(css).await;
        let deadline = Instant::now() + WAIT;
        // An element of a page that is gone answers "stale element reference".
        while old.tag_name().await.is_ok() {
            if Instant::now() > deadline {
                panic!("clicking {css:?} did not lead to another page within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Saves what the window shows as `target/screenshots/<test>/<nn>-<name>.png`,
    /// numbered in the order taken, and answers its path.
    pub(crate) async fn screenshot(&mut self, name: &str) -> PathBuf {
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking the screenshot {name:?}: {e}"));
        self.taken += 1;
        let path = self
            .screenshots
            .join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Polls until chromedriver accepts connections; it takes a moment to start.
    async fn wait_until_driver_answers(&mut self) {
        let deadline = Instant::now() + WAIT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} did not answer on port {} within {WAIT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await the session's end, and a test that panicked never would.
        // chromedriver's /shutdown ends every session (closing Chromium and removing
        // its temporary profile) and exits; a plain blocking request does it from
        // here, on any runtime. Killing chromedriver alone would leave Chromium
        // running, orphaned.
        self.client = None;
        let _ = shutdown_request(self.port);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Asks the chromedriver on `port` to end its sessions and exit.
fn shutdown_request(port: u16) -> std::io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    // The answer comes once the sessions are closed.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(())
}

/// Whether Chromium and chromedriver are installed. When not: a printed line and
/// `false`, unless `HERALD_REQUIRE_BROWSER` is set, as in CI: then a panic.
fn installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("HERALD_REQUIRE_BROWSER").is_none(),
        "HERALD_REQUIRE_BROWSER is set but {} is missing \
         (apt-get install chromium chromium-driver fonts-liberation)",
        missing.join(" and ")
    );
    eprintln!(
        "skipped in a browser: {} is missing \
         (apt-get install chromium chromium-driver fonts-liberation to run it)",
        missing.join(" and ")
    );
    false
}

/// A loopback port nobody listens on now. Another process could take it before
/// chromedriver does; browser tests run one at a time, so only a stranger could.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// Cargo's target folder: `CARGO_TARGET_DIR` when the build was told one.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// The harness proven on pages Herald serves today: the browser shows what the
/// server answered, and the screenshots are real PNG files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_and_the_api_document_show_in_a_real_browser() {
    let app = crate::helpers::sqlite().await;
    let server =
        crate::http::Server::start_with(std::sync::Arc::clone(&app.store), app.settings.clone())
            .await;
    let Some(mut browser) =
        Browser::start("the_health_check_and_the_api_document_show_in_a_real_browser").await
    else {
        return;
    };

    browser.goto(&format!("{}/healthz", server.base)).await;
    // Chromium shows a JSON answer as text in a <pre>.
    let health = browser.text_of("pre").await;
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let first = browser.screenshot("healthz").await;

    browser
        .goto(&format!("{}/api/v1/openapi.json", server.base))
        .await;
    let document = browser.text_of("pre").await;
    assert!(
        document.contains("Herald HTTP API"),
        "{}",
        &document[..200.min(document.len())]
    );
    let second = browser.screenshot("openapi").await;

    for (path, name) in [(&first, "01-healthz.png"), (&second, "02-openapi.png")] {
        assert!(path.ends_with(name), "{}", path.display());
        let png = std::fs::read(path).unwrap();
        // The PNG signature, and more than an empty image would take.
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", path.display());
        assert!(png.len() > 1000, "{}: {} bytes", path.display(), png.len());
    }
}

/// `fill` and `click` before the console needs them: Herald serves no form yet, so
/// a page of the test's own, given inline as a data: URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_types_into_a_field_and_clicks_a_button() {
    let Some(browser) = Browser::start("the_browser_types_into_a_field_and_clicks_a_button").await
    else {
        return;
    };
    browser
        .goto(
            "data:text/html;charset=utf-8,<input id=who value=old>\
             <button onclick=\"out.textContent='Dzień dobry, '+who.value\">Go</button>\
             <p id=out></p>",
        )
        .await;
    browser.fill("#who", "Zażółć").await;
    browser.click("button").await;
    assert_eq!(browser.text_of("#out").await, "Dzień dobry, Zażółć");
}
