package phototox;

import ij.Macro;

/** ImageJ-style option strings: {@code stride=32 mode=dense model=[path with spaces] stack}. */
final class Options {
    /** Options passed on to the Python side (handler or server). */
    static final String[] FORWARDED = {"stride", "mode", "threshold", "normalisation", "pixel_size", "model",
        "device"};

    private Options() {
    }

    static String get(String options, String key, String fallback) {
        if (options == null) return fallback;
        String padded = " " + options + " ";
        if (padded.contains(" " + key + " ")) return "";  // a bare flag
        return Macro.getValue(options, key, fallback);
    }

    static boolean flag(String options, String key) {
        return options != null && (" " + options + " ").contains(" " + key + " ");
    }

    static int getInt(String options, String key, int fallback) {
        String v = get(options, key, null);
        if (v == null || v.isEmpty()) return fallback;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    /** The options forwarded to Python, re-joined (values with spaces in brackets). */
    static String forwarded(String options) {
        StringBuilder b = new StringBuilder();
        for (String key : FORWARDED) {
            String v = get(options, key, null);
            if (v == null) continue;
            if (b.length() > 0) b.append(' ');
            b.append(key).append('=').append(v.contains(" ") ? "[" + v + "]" : v);
        }
        return b.toString();
    }
}
