import ij.gui.*; import ij.io.*; import ij.process.*;
import java.util.zip.*; import java.io.*; import java.nio.*; import java.nio.file.*;
// Rasterise every ROI of a Fiji ROI-set zip as ImageJ does (ImageProcessor.fill(Roi)), labels from "cell <n>".
public class RoiRaster {
  public static void main(String[] a) throws Exception {
    int w = Integer.parseInt(a[1]), h = Integer.parseInt(a[2]);
    ShortProcessor ip = new ShortProcessor(w, h);
    ZipInputStream in = new ZipInputStream(new FileInputStream(a[0]));
    ZipEntry e;
    while ((e = in.getNextEntry()) != null) {
      byte[] b = in.readAllBytes();
      Roi roi = new RoiDecoder(b, e.getName()).getRoi();
      int label = Integer.parseInt(roi.getName().split(" ")[1]);
      ip.setValue(label);
      ip.fill(roi);
      ImageProcessor mask = roi.getMask();
      int n = 0;
      if (mask == null) n = roi.getBounds().width * roi.getBounds().height;
      else for (int i = 0; i < mask.getPixelCount(); i++) if (mask.get(i) != 0) n++;
      System.out.println(roi.getName() + "\t" + roi.getTypeAsString() + "\t" + n);
    }
    ByteBuffer buf = ByteBuffer.allocate(w * h * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < w * h; i++) buf.putShort((short) ip.get(i));
    Files.write(Paths.get(a[3]), buf.array());
  }
}
