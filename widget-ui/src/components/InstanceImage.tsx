// An instance's image; small images (MNIST-like) are scaled without blur.
import { useState } from "react";

/** Shown instead of images when the server has no image callback (`serve FOLDER`). */
export const NO_IMAGES_NOTICE = "No images: this sweep was opened without an image callback.";

export interface InstanceImageProps {
  src: string;
  alt: string;
  className: string;
}

export function InstanceImage({ src, alt, className }: InstanceImageProps) {
  const [failed, setFailed] = useState<string | null>(null);
  const [small, setSmall] = useState(false);
  if (failed === src) {
    return (
      <span className={`${className} bcml-image-missing`} role="img" aria-label={`${alt} (image not available)`}>
        no image
      </span>
    );
  }
  return (
    <img
      className={`${className}${small ? " bcml-pixelated" : ""}`}
      src={src}
      alt={alt}
      loading="lazy"
      decoding="async"
      onLoad={(e) => setSmall(e.currentTarget.naturalWidth > 0 && e.currentTarget.naturalWidth < 100)}
      onError={() => setFailed(src)}
    />
  );
}
