// An instance's image; small images (MNIST-like) are scaled without blur.
import { useState } from "react";

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
