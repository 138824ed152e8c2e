//! The Atari ROMs Cartridge knows: every ROM PyPI `ale-py==0.12.1` ships (`ale_py/roms/*.bin`),
//! with its MD5 and size, whether the bundled ALE 0.6.0 has settings for it, and the game's
//! minimal action set.
//!
//! The minimal action sets are ALE 0.6.0's (`getMinimalActionSet()` of each game's settings,
//! as ALE ids `0..=17`); the list is empty for a game `play` cannot run: one the bundled ALE
//! has no settings for, or one whose screen is not 210 lines high. The table was generated
//! from `play --rom GAME --rom-info` for every ROM, and the `rom_table` test of
//! `cartridge-tests` checks every row against the live emulator.

/// One ROM of ale-py 0.12.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownRom {
    /// ALE game name, the ROM file stem (`breakout`).
    pub game: &'static str,
    /// MD5 of the ROM file, 32 lower-case hex digits.
    pub md5: &'static str,
    /// Size of the ROM file in bytes.
    pub size: u64,
    /// Whether the bundled ALE 0.6.0 has settings (rewards, lives, terminal) for the game: it
    /// selects them by file name (`src/games/supported/*.hpp`).
    pub ale06: bool,
    /// The game's minimal action set as ALE ids, in ALE's order: output `i` of a network
    /// trained on this game means `minimal_actions[i]`. Empty where `play` cannot run it.
    pub minimal_actions: &'static [u32],
}

impl KnownRom {
    /// The minimal action set, or `None` for a game `play` cannot run.
    pub fn playable_actions(&self) -> Option<&'static [u32]> {
        (!self.minimal_actions.is_empty()).then_some(self.minimal_actions)
    }
}

/// The known ROM of a game name (exact, already normalised: see [`normalize_game`]).
pub fn known_rom(game: &str) -> Option<&'static KnownRom> {
    KNOWN_ROMS.iter().find(|r| r.game == game)
}

/// The known ROM with this MD5 (32 lower-case hex digits).
pub fn rom_for_md5(md5: &str) -> Option<&'static KnownRom> {
    KNOWN_ROMS.iter().find(|r| r.md5 == md5)
}

/// The normalised ALE game name for user input: `Breakout`, `BreakoutNoFrameskip-v4`,
/// `ALE/Breakout-v5`, `SpaceInvaders`, `space-invaders` and `space_invaders` all give
/// `breakout` / `space_invaders`.
pub fn normalize_game(name: &str) -> String {
    let mut s = name.trim();
    for suffix in [
        "NoFrameskip-v4",
        "NoFrameskip-v0",
        "-v4",
        "-v5",
        "-v0",
        "Deterministic",
    ] {
        s = s.strip_suffix(suffix).unwrap_or(s);
    }
    let s = s.strip_prefix("ALE/").unwrap_or(s);
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c == '-' || c == ' ' {
            out.push('_');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Every ROM of ale-py 0.12.1, sorted by game name.
#[rustfmt::skip]
pub const KNOWN_ROMS: &[KnownRom] = &[
    KnownRom { game: "adventure", md5: "4b27f5397c442d25f0c418ccdacf1926", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "air_raid", md5: "35be55426c1fec32dfb503b4f0651572", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "alien", md5: "f1a0a23e6464d954e3a9579c4ccd01c8", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "amidar", md5: "acb7750b4d0c4bd34969802a7deb2990", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 10, 11, 12, 13] },
    KnownRom { game: "assault", md5: "de78b3a064d374390ac0710f95edde92", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 11, 12] },
    KnownRom { game: "asterix", md5: "89a68746eff7f266bbf08de2483abe55", size: 8192, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 6, 7, 8, 9] },
    KnownRom { game: "asteroids", md5: "ccbd36746ed4525821a8083b0d6d2c2c", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15] },
    KnownRom { game: "atlantis", md5: "9ad36e699ef6f45d9eb6c4cf90475c9f", size: 4096, ale06: true, minimal_actions: &[0, 1, 11, 12] },
    KnownRom { game: "atlantis2", md5: "826481f6fc53ea47c9f272f7050eedf7", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "backgammon", md5: "8556b42aa05f94bc29ff39c39b11bff4", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "bank_heist", md5: "00ce0bdd43aed84a983bef38fe7f5ee3", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "basic_math", md5: "819aeeb9a2e11deb54e6de334f843894", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "battle_zone", md5: "41f252a66c6301f1e8ab3612c19bc5d4", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "beam_rider", md5: "79ab4123a83dc11d468fb2108ea09e2e", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 6, 7, 11, 12] },
    KnownRom { game: "berzerk", md5: "136f75c4dd02c29283752b7e5799f978", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "blackjack", md5: "0a981c03204ac2b278ba392674682560", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "bowling", md5: "c9b7afad3bfd922e006a6bfc1d4f3fe7", size: 2048, ale06: true, minimal_actions: &[0, 1, 2, 5, 10, 13] },
    KnownRom { game: "boxing", md5: "c3ef5c4653212088eda54dc91d787870", size: 2048, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "breakout", md5: "f34f08e5eb96e500e851a80be3277a56", size: 2048, ale06: true, minimal_actions: &[0, 1, 3, 4] },
    KnownRom { game: "carnival", md5: "028024fb8e5e5f18ea586652f9799c96", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "casino", md5: "b816296311019ab69a21cb9e9e235d12", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "centipede", md5: "91c2098e88a6b13f977af8c003e0bca5", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "chopper_command", md5: "c1cb228470a87beb5f36e90ac745da26", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "combat", md5: "0ef64cdbecccb7049752a3de0b7ade14", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "crazy_climber", md5: "55ef7b65066428367844342ed59f956c", size: 8192, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 6, 7, 8, 9] },
    KnownRom { game: "crossbow", md5: "8cd26dcf249456fe4aeb8db42d49df74", size: 16384, ale06: false, minimal_actions: &[] },
    KnownRom { game: "darkchambers", md5: "106855474c69d08c8ffa308d47337269", size: 16384, ale06: false, minimal_actions: &[] },
    KnownRom { game: "defender", md5: "0f643c34e40e3f1daafd9c524d3ffe64", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "demon_attack", md5: "f0e0addc07971561ab80d9abe1b8d333", size: 4096, ale06: true, minimal_actions: &[0, 1, 3, 4, 11, 12] },
    KnownRom { game: "donkey_kong", md5: "36b20c427975760cb9cf4a47e41369e4", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "double_dunk", md5: "368d88a6c071caba60b4f778615aae94", size: 16384, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "earthworld", md5: "5aea9974b975a6a844e6df10d2b861c4", size: 8192, ale06: false, minimal_actions: &[] },
    KnownRom { game: "elevator_action", md5: "71f8bacfbdca019113f3f0801849057e", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "enduro", md5: "94b92a882f6dbaa6993a46e2dcc58402", size: 4096, ale06: true, minimal_actions: &[0, 1, 3, 4, 5, 8, 9, 11, 12] },
    KnownRom { game: "entombed", md5: "6b683be69f92958abe0e2a9945157ad5", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "et", md5: "615a3bf251a38eb6638cdc7ffbde5480", size: 8192, ale06: false, minimal_actions: &[] },
    KnownRom { game: "fishing_derby", md5: "b8865f05676e64f3bec72b9defdacfa7", size: 2048, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "flag_capture", md5: "30512e0e83903fc05541d2f6a6a62654", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "freeway", md5: "8e0ab801b1705a740b476b7f588c6d16", size: 2048, ale06: true, minimal_actions: &[0, 2, 5] },
    KnownRom { game: "frogger", md5: "081e2c114c9c20b61acf25fc95c71bf4", size: 4096, ale06: true, minimal_actions: &[0, 2, 3, 4, 5] },
    KnownRom { game: "frostbite", md5: "4ca73eb959299471788f0b685c3ba0b5", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "galaxian", md5: "211774f4c5739042618be8ff67351177", size: 8192, ale06: true, minimal_actions: &[0, 1, 3, 4, 11, 12] },
    KnownRom { game: "gopher", md5: "c16c79aad6272baffb8aae9a7fff0864", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 10, 11, 12] },
    KnownRom { game: "gravitar", md5: "8ac18076d01a6b63acf6e2cab4968940", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "hangman", md5: "f16c709df0a6c52f47ff52b9d95b7d8d", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "haunted_house", md5: "f0a6e99f5875891246c3dbecbf2d2cea", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "hero", md5: "fca4a5be1251927027f2c24774a02160", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "human_cannonball", md5: "7972e5101fa548b952d852db24ad6060", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "ice_hockey", md5: "a4c08c4994eb9d24fb78be1793e82e26", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "jamesbond", md5: "e51030251e440cffaab1ac63438b44ae", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "journey_escape", md5: "718ae62c70af4e5fd8e932fee216948a", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "joust", md5: "3276c777cbe97cdd2b4a63ffc16b7151", size: 8192, ale06: false, minimal_actions: &[] },
    KnownRom { game: "kaboom", md5: "5428cdfada281c569c74c7308c7f2c26", size: 2048, ale06: true, minimal_actions: &[0, 1, 3, 4] },
    KnownRom { game: "kangaroo", md5: "4326edb70ff20d0ee5ba58fa5cb09d60", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "keystone_kapers", md5: "6c1f3f2e359dbf55df462ccbcdd2f6bf", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "king_kong", md5: "0dd4c69b5f9a7ae96a7a08329496779a", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "klax", md5: "eed9eaf1a0b6a2b9bc4c8032cb43e3fb", size: 16384, ale06: false, minimal_actions: &[] },
    KnownRom { game: "koolaid", md5: "534e23210dd1993c828d944c6ac4d9fb", size: 4096, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 6, 7, 8, 9] },
    KnownRom { game: "krull", md5: "4baada22435320d185c95b7dd2bcdb24", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "kung_fu_master", md5: "5b92a93b23523ff16e2789b820e2a4c5", size: 8192, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 8, 9, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "laser_gates", md5: "8e4cd60d93fcde8065c1a2b972a26377", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "lost_luggage", md5: "2d76c5d1aad506442b9e9fb67765e051", size: 4096, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 6, 7, 8, 9] },
    KnownRom { game: "mario_bros", md5: "e908611d99890733be31733a979c62d8", size: 8192, ale06: false, minimal_actions: &[] },
    KnownRom { game: "maze_craze", md5: "ed2218b3075d15eaa34e3356025ccca3", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "miniature_golf", md5: "df62a658496ac98a3aa4a6ee5719c251", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "montezuma_revenge", md5: "3347a6dd59049b15a38394aa2dafa585", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "mr_do", md5: "aa7bb54d2c189a31bb1fa20099e42859", size: 8192, ale06: true, minimal_actions: &[] },
    KnownRom { game: "ms_pacman", md5: "87e79cd41ce136fd4f72cc6e2c161bee", size: 8192, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 6, 7, 8, 9] },
    KnownRom { game: "name_this_game", md5: "36306070f0c90a72461551a7a4f3a209", size: 4096, ale06: true, minimal_actions: &[0, 1, 3, 4, 11, 12] },
    KnownRom { game: "othello", md5: "113cd09c9771ac278544b7e90efe7df2", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "pacman", md5: "fc2233fc116faef0d3c31541717ca2db", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "phoenix", md5: "7e52a95074a66640fcfde124fffd491a", size: 8192, ale06: true, minimal_actions: &[0, 1, 3, 4, 5, 11, 12, 13] },
    KnownRom { game: "pitfall", md5: "3e90cf23106f2e08b2781e41299de556", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "pitfall2", md5: "6d842c96d5a01967be9680080dd5be54", size: 10495, ale06: false, minimal_actions: &[] },
    KnownRom { game: "pong", md5: "60e0ea3cbe0913d39803477945e9e5ec", size: 2048, ale06: true, minimal_actions: &[0, 1, 3, 4, 11, 12] },
    KnownRom { game: "pooyan", md5: "4799a40b6e889370b7ee55c17ba65141", size: 4096, ale06: true, minimal_actions: &[] },
    KnownRom { game: "private_eye", md5: "ef3a4f64b6494ba770862768caf04b86", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "qbert", md5: "484b0076816a104875e00467d431c2d2", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5] },
    KnownRom { game: "riverraid", md5: "393948436d1f4cc3192410bb918f9724", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "road_runner", md5: "ce5cc62608be2cd3ed8abd844efb8919", size: 16384, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "robotank", md5: "4f618c2429138e0280969193ed6c107e", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "seaquest", md5: "240bfbac5163af4df5ae713985386f92", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "sir_lancelot", md5: "dd0cbe5351551a538414fb9e37fc56e8", size: 8192, ale06: true, minimal_actions: &[] },
    KnownRom { game: "skiing", md5: "b76fbadc8ffb1f83e2ca08b6fb4d6c9f", size: 2048, ale06: true, minimal_actions: &[0, 3, 4] },
    KnownRom { game: "solaris", md5: "e72eb8d4410152bdcb69e7fba327b420", size: 16384, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "space_invaders", md5: "72ffbef6504b75e69ee1045af9075f66", size: 4096, ale06: true, minimal_actions: &[0, 1, 3, 4, 11, 12] },
    KnownRom { game: "space_war", md5: "b702641d698c60bcdc922dbd8c9dd49c", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "star_gunner", md5: "a3c1c70024d7aabb41381adbfb6d3b25", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "superman", md5: "a9531c763077464307086ec9a1fd057d", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "surround", md5: "4d7517ae69f95cfbc053be01312b7dba", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "tennis", md5: "42cdd6a9e42a3639e190722b8ea3fc51", size: 2048, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "tetris", md5: "b0e1ee07fbc73493eac5651a52f90f00", size: 2048, ale06: true, minimal_actions: &[0, 1, 3, 4, 5] },
    KnownRom { game: "tic_tac_toe_3d", md5: "0db4f4150fecf77e4ce72ca4d04c052f", size: 2048, ale06: false, minimal_actions: &[] },
    KnownRom { game: "time_pilot", md5: "fc2104dd2dadf9a6176c1c1c8f87ced9", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 10, 11, 12, 13] },
    KnownRom { game: "trondead", md5: "fb27afe896e7c928089307b32e5642ee", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "turmoil", md5: "7a5463545dfb2dcfdafa6074b2f2c15e", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12] },
    KnownRom { game: "tutankham", md5: "085322bae40d904f53bdcc56df0593fc", size: 8192, ale06: true, minimal_actions: &[0, 2, 3, 4, 5, 10, 11, 12] },
    KnownRom { game: "up_n_down", md5: "a499d720e7ee35c62424de882a3351b6", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 5, 10, 13] },
    KnownRom { game: "venture", md5: "3e899eba0ca8cd2972da1ae5479b4f0d", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "video_checkers", md5: "539d26b6e9df0da8e7465f0f5ad863b7", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "video_chess", md5: "f0b7db930ca0e548c41a97160b9f6275", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "video_cube", md5: "3f540a30fdee0b20aed7288e4a5ea528", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "video_pinball", md5: "107cc025334211e6d29da0b6be46aec7", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 10, 11, 12] },
    KnownRom { game: "warlords", md5: "cbe5a166550a8129a5e6d374901dffad", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "wizard_of_wor", md5: "7e8aa18bc9502eb57daaf5e7c1e94da7", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 10, 11, 12, 13] },
    KnownRom { game: "word_zapper", md5: "ec3beb6d8b5689e867bafb5d5f507491", size: 4096, ale06: false, minimal_actions: &[] },
    KnownRom { game: "yars_revenge", md5: "c5930d0e8cdae3e037349bfa08e871be", size: 4096, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    KnownRom { game: "zaxxon", md5: "eea0da9b987d661264cce69a7c13c3bd", size: 8192, ale06: true, minimal_actions: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
];
