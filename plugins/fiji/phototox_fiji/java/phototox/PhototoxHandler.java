package phototox;

/**
 * An in-process analysis route: registered from Python (pyimagej or scyjava/JPype) with
 * {@link Phototox#setHandler}. It receives the pixels of one 2-D frame (row-major, width*height),
 * the option string (ImageJ style: {@code stride=32 mode=dense threshold=0.5 model=default}),
 * fills {@code mapOut} (width*height) with the sickness map and returns the result line
 * ({@code mean_sick_probability=0.41;sick_area_fraction=0.3;label=healthy;confidence=0.59;...}),
 * or a line starting with {@code error:} and a message for the user (exceptions do not cross the
 * Python bridge reliably).
 */
public interface PhototoxHandler {
    String analyse(float[] pixels, int width, int height, String options, float[] mapOut) throws Exception;
}
